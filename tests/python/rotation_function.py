"""A rotation function written exactly like AWS's Lambda rotation template
(SecretsManagerRotationTemplate/lambda_function.py): `lambda_handler(event, context)` checks the
secret's rotation state, then runs one of the four steps against Secrets Manager with boto3 and
`endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT']`.

The end-to-end tests serve it as `lambda_function` behind docs/examples/lambda_http_handler.py.
Two additions for the tests, marked TEST: every event received is recorded in EVENTS, and a
secret listed in FAIL_SET_SECRET fails its setSecret step.
"""

import logging
import os
import threading

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# TEST: what the function received, and which secrets' setSecret fails.
EVENTS: list[dict] = []
FAIL_SET_SECRET: set[str] = set()
LOCK = threading.Lock()


def lambda_handler(event, context):
    """Secrets Manager rotation: createSecret, setSecret, testSecret, finishSecret."""
    with LOCK:
        EVENTS.append(dict(event))  # TEST

    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]

    # Setup the client
    service_client = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])

    # Make sure the version is staged correctly
    metadata = service_client.describe_secret(SecretId=arn)
    if not metadata["RotationEnabled"]:
        logger.error("Secret %s is not enabled for rotation" % arn)
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        logger.error("Secret version %s has no stage for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if "AWSCURRENT" in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s." % (token, arn))
        return
    elif "AWSPENDING" not in versions[token]:
        logger.error("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    if step == "createSecret":
        create_secret(service_client, arn, token)
    elif step == "setSecret":
        set_secret(service_client, arn, token)
    elif step == "testSecret":
        test_secret(service_client, arn, token)
    elif step == "finishSecret":
        finish_secret(service_client, arn, token)
    else:
        raise ValueError("Invalid step parameter")


def create_secret(service_client, arn, token):
    """Generates a new secret into the AWSPENDING version, unless it already has a value."""
    # Make sure the current secret exists
    service_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")

    # Now try to get the secret version, if that fails, put a new secret
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: Successfully retrieved secret for %s." % arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude_characters = os.environ.get("EXCLUDE_CHARACTERS", "/@\"'\\")
        passwd = service_client.get_random_password(ExcludeCharacters=exclude_characters)
        service_client.put_secret_value(
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=passwd["RandomPassword"],
            VersionStages=["AWSPENDING"],
        )
        logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (arn, token))


def set_secret(service_client, arn, token):
    """Where the new secret is set in the service it protects (a database, an API...)."""
    if arn in FAIL_SET_SECRET:  # TEST
        raise RuntimeError("setSecret: the service refused the new password (test)")


def test_secret(service_client, arn, token):
    """Where the new secret is tested against the service; here: the pending value is there."""
    service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")


def finish_secret(service_client, arn, token):
    """Moves AWSCURRENT to the new version (and AWSPREVIOUS to the old one)."""
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version in metadata["VersionIdsToStages"]:
        if "AWSCURRENT" in metadata["VersionIdsToStages"][version]:
            if version == token:
                # The correct version is already marked as current, return
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s" % (version, arn))
                return
            current_version = version
            break

    # Finalize by staging the secret version current
    service_client.update_secret_version_stage(
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current_version,
    )
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s." % (token, arn))
