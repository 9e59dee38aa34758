"""lottrace: command line, local platform and embedded infrastructure."""
