"""What embeddings are for: item files, faiss neighbour indexes, recommendations, clustering, 2-D plots
and embedding export."""
