import { defineConfig } from '@hey-api/openapi-ts'

// The client is generated from the API's own document (`flask write-openapi web/openapi.json`),
// never written by hand; `make test` fails when either is stale (tests/web/test_client_fresh.py
// points these two variables at a fresh copy and compares).
export default defineConfig({
  input: process.env.OPENAPI_INPUT ?? './openapi.json',
  output: { path: process.env.OPENAPI_OUTPUT ?? './src/client' },
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
})
