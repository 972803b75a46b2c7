"""deep_perception.sensors"""
