"""What several stages know of one format: its schema, how its files are told apart,
how its layers are named. A reader and a writer of the same format share this; neither
imports the other."""
