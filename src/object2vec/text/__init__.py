"""Text to token ids: tokenizers and vocabularies, ``object2vec prepare``, and SageMaker's auxiliary channel
(vocabulary files and pretrained vectors)."""
