import { defineConfig } from '@hey-api/openapi-ts'

// The client is generated from the API's own document (written by `flask openapi write`),
// never written by hand; `make test` fails when this output is stale.
export default defineConfig({
  input: './openapi.json',
  output: { path: './src/client' },
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
})
