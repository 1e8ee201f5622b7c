// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Modules that perform I/O. The pure core must not import them (docs/architecture.md). */
const ioModules = [
  'pg',
  'kafkajs',
  'ioredis',
  'etcd3',
  'express',
  '@grpc/grpc-js',
  '@grpc/proto-loader',
  'fs',
  'node:fs',
  'fs/promises',
  'node:fs/promises',
  'net',
  'node:net',
  'http',
  'node:http',
  'timers',
  'node:timers',
  'child_process',
  'node:child_process',
  'dgram',
  'node:dgram',
];

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '.hourglass/**',
      'bench-results/**',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      // Express and pg handlers legitimately pass async functions where void is expected; we
      // catch inside them (see libs/http-api), so only the argument check is relaxed.
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false } },
      ],
    },
  },
  {
    files: ['libs/core/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: ioModules, patterns: ['@hourglass/*'] }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'fetch'],
    },
  },
  {
    files: ['**/test/**/*.ts'],
    rules: {
      // Chai-less assertions: node:assert's functions are unbound by design.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
