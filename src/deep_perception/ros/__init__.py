"""deep_perception.ros"""
