"""deep_perception.models"""
