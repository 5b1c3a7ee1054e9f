"""dyimages_common.store.qdrant"""
