print("unid")
