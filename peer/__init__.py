"""p2pcall Python peer (aiortc)."""
