"""deep_perception.inference"""
