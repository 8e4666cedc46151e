"""The models `make bench` measures: a Question and its Choices."""
