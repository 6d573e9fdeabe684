#!/usr/bin/env python3
"""Regenerates NovaCron's price tables (data/prices/) from Apache Libcloud's pricing.json.

Source: the `pricing.json` shipped inside the Apache-2.0 `apache-libcloud` package on PyPI, at the
version pinned in scripts/prices-requirements.txt. The output is deterministic: the same package
gives the same files byte for byte (a test in sim/tests/it/pricing.rs checks the committed files
against this script's output).

    python3 -m venv .venv-prices
    .venv-prices/bin/pip install -r scripts/prices-requirements.txt
    .venv-prices/bin/python scripts/prices.py            # writes data/prices/
    .venv-prices/bin/python scripts/prices.py --out DIR  # elsewhere

Every file has one format (header `region,name,unit,term,usd_per_h,source`):
- region: the cloud's own region name (us-east-1, eastus, us-central1);
- name: an EC2 instance type (m5.large), an Azure size as Libcloud keys it (standardd2sv4), or a
  GCE machine family (n2, e2, n2_custom);
- unit: `instance` (price of one instance-hour), `vcpu` (one vCPU-hour) or `gib` (one GiB of
  memory for an hour); GCE prices a machine type as vCPUs x vcpu price + GiB x gib price;
- term: on-demand, preemptible (GCE), low-priority (Azure), commit-1y, commit-3y (GCE);
- usd_per_h: US dollars per hour, > 0: the source's 0.0 entries mean "no price", so they are left
  out, never written as free;
- source: where in pricing.json the row comes from (`ec2_linux`, `azure_linux`, or the GCE SKU).
"""

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from datetime import datetime, timezone

PINNED = "3.9.1"
HEADER = "region,name,unit,term,usd_per_h,source"

# The EC2 families NovaCron's scenarios and catalogs use: general purpose, compute and memory
# optimised (Intel, AMD and Graviton, current and previous generation), burstable, and two GPU
# families. Every region is kept.
AWS_FAMILIES = {
    "t3", "t3a", "t4g",
    "m5", "m5a", "m6i", "m6a", "m6g", "m7i", "m7a", "m7g",
    "c5", "c5a", "c6i", "c6a", "c6g", "c7i", "c7a", "c7g",
    "r5", "r5a", "r6i", "r6a", "r6g", "r7i", "r7a", "r7g",
    "g4dn", "g5", "p3",
}
# Azure sizes with premium storage of the B, Dv3/v4, Ev3/v4 and Fsv2 series (and their
# low-priority prices); every region.
AZURE_SIZE = re.compile(r"^(standard|lowpriority)(b\d+m?s|d\d+a?d?sv[345]|e\d+a?d?sv[345]|f\d+sv2)$")
GCE_TERMS = {
    "on_demand": "on-demand",
    "preemptible": "preemptible",
    "1yr_commitment": "commit-1y",
    "3yr_commitment": "commit-3y",
}


def fmt(price):
    """Shortest text that reads back as the same float."""
    return repr(float(price))


def positive(price):
    try:
        p = float(price)
    except (TypeError, ValueError):
        return None
    return p if p > 0 and p == p and p != float("inf") else None


def aws_rows(compute):
    rows = []
    for itype, regions in compute["ec2_linux"].items():
        if itype.split(".")[0] not in AWS_FAMILIES:
            continue
        for region, price in regions.items():
            p = positive(price)
            if p is not None:
                rows.append((region, itype, "instance", "on-demand", fmt(p), "ec2_linux"))
    return rows


def azure_rows(compute):
    rows = []
    for size, regions in compute["azure_linux"].items():
        m = AZURE_SIZE.match(size)
        if not m:
            continue
        if m.group(1) == "lowpriority":
            name, term = "standard" + size[len("lowpriority"):], "low-priority"
        else:
            name, term = size, "on-demand"
        for region, price in regions.items():
            p = positive(price)
            if p is not None:
                rows.append((region, name, "instance", term, fmt(p), "azure_linux"))
    return rows


def gcp_rows(compute):
    rows = []
    for family, parts in compute["gce_instances"].items():
        for part, entry in parts.items():
            if not entry:
                continue
            # f1 and g1 are shared-core types priced per instance ("micro instance").
            if family in ("f1", "g1"):
                unit = "instance"
            else:
                unit = {"cpu": "vcpu", "ram": "gib"}[part]
            for key, term in GCE_TERMS.items():
                for region, price in (entry.get(key) or {}).items():
                    p = positive(price.get("price"))
                    if p is not None:
                        rows.append((region, family, unit, term, fmt(p), price.get("sku") or "gce_instances"))
    return rows


def write_table(path, rows):
    rows = sorted(set(rows))
    keys = [r[:4] for r in rows]
    if len(keys) != len(set(keys)):
        sys.exit(f"error: {path}: two prices for one region/name/unit/term")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")
    return len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "prices"),
                    help="folder to write aws.csv, azure.csv, gcp.csv and SOURCE.md into (default: data/prices)")
    ap.add_argument("--any-version", action="store_true",
                    help=f"accept an apache-libcloud other than the pinned {PINNED} (SOURCE.md records the one used)")
    args = ap.parse_args()

    try:
        version = importlib.metadata.version("apache-libcloud")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("error: apache-libcloud is not installed: pip install -r scripts/prices-requirements.txt")
    if version != PINNED and not args.any_version:
        sys.exit(f"error: apache-libcloud {version} is installed but {PINNED} is pinned "
                 "(pip install -r scripts/prices-requirements.txt, or pass --any-version)")
    meta = importlib.metadata.metadata("apache-libcloud")
    licence = meta.get("License-Expression") or meta.get("License") or "unknown"
    spec = importlib.util.find_spec("libcloud")
    path = os.path.join(os.path.dirname(spec.origin), "data", "pricing.json")
    with open(path, "rb") as f:
        raw = f.read()
    data = json.loads(raw)
    compute = data["compute"]
    updated = datetime.fromtimestamp(int(data["updated"]), tz=timezone.utc)

    os.makedirs(args.out, exist_ok=True)
    counts = {}
    for name, rows in (("aws", aws_rows(compute)), ("azure", azure_rows(compute)), ("gcp", gcp_rows(compute))):
        if not rows:
            sys.exit(f"error: no {name} prices in {path}")
        counts[name] = write_table(os.path.join(args.out, f"{name}.csv"), rows)

    source = f"""# Price tables: source

Generated by `scripts/prices.py` (do not edit by hand; see that file for how to run it).

| | |
|---|---|
| source | `libcloud/data/pricing.json` inside the `apache-libcloud` package on PyPI |
| package version | {version} |
| licence | {licence} (Apache Software Foundation) |
| prices dated | {updated:%Y-%m-%d} (pricing.json `updated` = {data["updated"]}) |
| pricing.json sha256 | `{hashlib.sha256(raw).hexdigest()}` |

| file | rows | what |
|---|---|---|
| aws.csv | {counts["aws"]} | EC2 Linux on-demand per instance type and region (`compute.ec2_linux`), families {", ".join(sorted(AWS_FAMILIES))} |
| azure.csv | {counts["azure"]} | Azure Linux per size and region (`compute.azure_linux`), B, D*s v3/v4, E*s v3/v4 and F*s v2 sizes; `low-priority` rows are the `lowpriority*` sizes |
| gcp.csv | {counts["gcp"]} | GCE per vCPU-hour and GiB-hour per machine family and region (`compute.gce_instances`): on-demand, preemptible, 1- and 3-year commitment; f1/g1 per instance |

Entries of 0.0 in pricing.json mean the source has no price; they are left out, never read as
free. Spot prices of AWS are not in the source: they come from the live API (DescribeSpotPriceHistory).
"""
    with open(os.path.join(args.out, "SOURCE.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(source)
    print(f"wrote {args.out}: aws {counts['aws']}, azure {counts['azure']}, gcp {counts['gcp']} rows (apache-libcloud {version})")


if __name__ == "__main__":
    main()
