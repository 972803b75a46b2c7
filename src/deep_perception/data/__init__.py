"""deep_perception.data"""
