"""The CDK app (built in the deploy issue): reads the services' specs, ships no code into images."""
