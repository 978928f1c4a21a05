"""Offline bundles: every artifact a converge downloads, gathered into one folder with checksums.

`mlenv bundle DIR` writes it (the Debian packages with Debian's own signed indexes, the wheels of every
virtualenv behind a simple index, the container image references); any web server the hosts reach then
serves it, and `bundle.url` in mlenv.yaml points the converge at it instead of the internet.
"""
