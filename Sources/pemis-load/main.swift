print("pemis-load: written next")
