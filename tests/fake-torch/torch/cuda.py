"""TEST FAKE torch.cuda: there is never a GPU."""

def is_available():
    return False

def device_count():
    return 0
