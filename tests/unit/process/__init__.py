"""Records that cross process boundaries."""
