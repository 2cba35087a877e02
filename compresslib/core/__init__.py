"""Framework-free math (NumPy only), shared by the torch and keras backends."""
