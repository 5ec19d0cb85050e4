print("uni")
