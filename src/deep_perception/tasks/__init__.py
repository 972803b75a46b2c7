"""deep_perception.tasks"""
