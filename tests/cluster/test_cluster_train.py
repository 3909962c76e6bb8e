#!/usr/bin/env python3
"""test_cluster_train.py - MLP training on the netns test cluster, 2 hosts x
2 slots over TCP between namespaces, launched with `ringtrain launch
--hostfile`, must end with the same parameters, byte for byte, as the same
job with -np 4 on one host. Skipped (77) without root/iproute2 or while
`ringtrain train` lacks --export-params."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402

CLUSTER_ID = "2"


def main():
    e.require_train_flags("--export-params", "--threads")
    cl = os.path.join(e.SRC, "cluster")
    down = ["bash", os.path.join(cl, "netns-down.sh"), CLUSTER_ID]
    subprocess.run(down, stderr=subprocess.DEVNULL)  # leftovers of a killed run
    up = subprocess.run(["bash", os.path.join(cl, "netns-up.sh"), "2", CLUSTER_ID])
    if up.returncode == e.SKIP:
        e.skip("no network namespaces here (see the reason above)")
    if up.returncode != 0:
        e.check(False, "netns-up.sh 2 failed")
        e.finish()
    try:
        with tempfile.TemporaryDirectory() as d:
            p = lambda n: os.path.join(d, n)
            spec = e.write_dataset(p("train.h5"))
            hosts = subprocess.run(["bash", os.path.join(cl, "netns-hostfile.sh"), "2", "2",
                                    CLUSTER_ID], capture_output=True, text=True, check=True)
            with open(p("hosts"), "w") as f:
                f.write(hosts.stdout)
            train = ["train", "--model", spec, "--data", p("train.h5"), "--batch", 16,
                     "--steps", 40, "--optimizer", "adamw", "--lr", 3e-3, "--seed", 7,
                     "--threads", 1, "--log-every", 10]
            net = f"10.77.{CLUSTER_ID}.0/24"
            mca = ["--mca", "plm_rsh_agent", os.path.join(cl, "netns-rsh.sh"),
                   "--mca", "routed", "direct", "--mca", "oob_tcp_if_include", net,
                   "--mca", "btl_tcp_if_include", net, "--mca", "btl", "self,tcp"]
            margs = [f"--mpirun-arg={a}" for a in mca]

            ref = e.Run(["-np", 4, "--oversubscribe", "--", *train,
                         "--export-params", p("one_host.h5")])
            e.check(ref.rc == 0, f"np=4 on one host exits 0 (got {ref.rc})") or ref.dump()
            cluster = e.Run(["--hostfile", p("hosts"), *margs, "--", *train,
                             "--export-params", p("two_hosts.h5")])
            e.check(cluster.rc == 0, f"2 hosts x 2 slots exits 0 (got {cluster.rc})") or \
                cluster.dump()
            e.check("plm_rsh_agent" in cluster.stderr and "--hostfile" in cluster.stderr,
                    "the printed mpirun command uses the hostfile and the netns agent")
            e.same_bytes(p("two_hosts.h5"), p("one_host.h5"), "2 hosts x 2 vs np=4 on one host")
    finally:
        subprocess.run(down)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        e.check(f"rt{CLUSTER_ID}-" not in left, "test namespaces removed")
    e.finish()


if __name__ == "__main__":
    main()
