"""Developer tools around the pipeline: the metric regression gate and the learning-rate sweep."""
