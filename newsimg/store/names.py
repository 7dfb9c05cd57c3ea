"""The image sources' names, as stored in every shard, unit and index ``source`` column."""

YFCC = "yfcc"  # the YFCC100M pool
NEWSIMAGES = "newsimages"  # the articles' own (original) images
N24NEWS = "n24news"  # the N24News training images
