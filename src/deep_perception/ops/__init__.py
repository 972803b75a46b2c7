"""deep_perception.ops"""
