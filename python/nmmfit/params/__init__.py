"""Parameter spaces, transforms, feedback inhibition control and fitting schemes (data, not names)."""
