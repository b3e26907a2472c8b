uda = dict(method='source_only')  # supervised source loss only: the lower baseline
