"""The tiny suite: GPT-NeoX models trained here on real text, raw and deduplicated."""
