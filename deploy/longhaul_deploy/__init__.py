"""The CDK app: a platform stack and one stack per service, built from the services' specs
(see docs/deploy.md). It reads the specs and ships no code into the services' images."""
