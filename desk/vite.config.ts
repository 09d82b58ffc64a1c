import { defineConfig } from 'vite';

// The desk is served by Herald's API at its own origin (desk/dist). In development,
// `npm run dev` proxies the API: HERALD_URL (default http://127.0.0.1:8080).
const api = process.env.HERALD_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/v1': { target: api, changeOrigin: false },
      '/healthz': api,
      '/readyz': api,
    },
  },
});
