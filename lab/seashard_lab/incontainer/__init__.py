"""Scripts that run INSIDE the lab containers (python3 of the image, stdlib and
scapy), copied in by `seashard_lab.lab.Lab`; the host never imports them."""
