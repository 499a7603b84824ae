"""Figures: one function per report figure, styled only by `plots.style`."""
