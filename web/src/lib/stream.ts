/** Cosine similarity of unit vectors (the API returns them normalised). */
export function similarity(vectors: number[][]): number[][] {
  return vectors.map((a) => vectors.map((b) => a.reduce((sum, value, index) => sum + value * b[index], 0)))
}
