"""deep_perception.train"""
