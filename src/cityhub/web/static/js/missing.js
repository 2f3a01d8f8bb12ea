// Loaded only when main.js could not be: its libraries (web/node_modules) are not installed.

import { t } from "./i18n.js";

const banner = document.querySelector("#banner");
banner.textContent = t("error.vendor");
banner.hidden = false;
banner.classList.add("sticky");
