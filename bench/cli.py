def main(argv=None):
    print("hello")
