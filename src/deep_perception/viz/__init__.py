"""deep_perception.viz"""
