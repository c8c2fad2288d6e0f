"""The job spec: its wire form (`wire`: YAML dict <-> protobuf, light) apart from its checks (`validate`: pydantic, catalogs, datasets)."""
