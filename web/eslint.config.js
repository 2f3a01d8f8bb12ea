// eslint over the dashboard's ES modules, run from the repository root (`make lint`; `npm run lint` in web/):
// eslint --config web/eslint.config.js src/cityhub/web/static/js
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    files: ["src/cityhub/web/static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      ...js.configs.recommended.rules,
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      "prefer-const": "error",
    },
  },
];
