"""AWS access: traced aioboto3 clients and Secrets Manager."""

from longhaul.aws.clients import AwsClients, client_config
from longhaul.aws.secrets import SecretNotFound, Secrets, load_secrets

__all__ = ["AwsClients", "SecretNotFound", "Secrets", "client_config", "load_secrets"]
