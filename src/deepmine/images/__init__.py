"""Images: CNN classification from class folders, tables of image paths, and IDX/NPZ arrays."""
