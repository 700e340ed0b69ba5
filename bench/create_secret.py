"""Create the benchmark secret on an endpoint and check it reads back (used by bench/run.sh).

usage: create_secret.py ENDPOINT REGION SECRET_ID VALUE
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment.
"""

import os
import sys

import boto3
from botocore.config import Config


def main() -> int:
    endpoint, region, secret_id, value = sys.argv[1:5]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )
    client.create_secret(Name=secret_id, SecretString=value)
    got = client.get_secret_value(SecretId=secret_id)["SecretString"]
    if got != value:
        print(f"GetSecretValue returned {got!r}, expected {value!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
