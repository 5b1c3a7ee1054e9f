"""dyimages_common.store"""
