"""deep_perception.citygml"""
