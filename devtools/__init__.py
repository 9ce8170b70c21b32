"""Development tools: the local DynamoDB server, sample data and the demo. Not part of the installed package."""
