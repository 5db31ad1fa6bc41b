from torchstreamer.testing import load_hypothesis_profile

load_hypothesis_profile()
