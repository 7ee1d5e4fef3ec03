// The portal's pages (French), one hash route each; data from /v1/portal, receipts
// verified in this browser by ./verify/receipt.js.
//
// Rules: every text from the chain is inserted as text (never as HTML); every page has
// one h1 and labelled controls; nothing is loaded from outside this node.

import { verifyReceipt, parseJsonExact, ReceiptError, RECEIPT_FILE_BYTES_MAX } from "./verify/receipt.js";
import { readGenesis, RecordError } from "./verify/records.js";
import { hex } from "./verify/encoding.js";
import { sha256, CryptoUnavailable } from "./verify/crypto.js";

const main = document.getElementById("contenu");
const GENESIS_BYTES_MAX = 1024 * 1024;
const DOCUMENT_BYTES_MAX = 2 * 1024 * 1024 * 1024;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const nf = new Intl.NumberFormat("fr-FR");
const euros = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
const when = new Intl.DateTimeFormat("fr-FR", { dateStyle: "long", timeStyle: "short", timeZone: "UTC" });

function dateTime(ms) { return `${when.format(new Date(Number(ms)))} UTC`; }
function day(iso) {
  if (!iso) return "date inconnue";
  const [y, m, d] = String(iso).split("-").map(Number);
  return new Intl.DateTimeFormat("fr-FR", { dateStyle: "long", timeZone: "UTC" }).format(Date.UTC(y, m - 1, d));
}
function delay(ms) {
  const minutes = Math.round(ms / 60000);
  if (minutes < 1) return "moins d'une minute";
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.round(hours / 24)} jours`;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body?.error?.message || `le nœud a répondu ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function page(title, ...content) {
  main.replaceChildren(el("h1", {}, title), ...content.flat().filter((c) => c !== null && c !== undefined));
  document.title = `${title} — Tabellion`;
}

function problem(text) { return el("p", { class: "note", role: "alert" }, text); }

function incomplete(body) {
  return body.complete === false
    ? el("p", { class: "note" }, "Le nœud lit encore le registre : rechargez la page dans un instant pour tout voir.")
    : null;
}

let townsCache = null;
async function towns() {
  townsCache ??= (await getJson("/v1/portal/towns")).towns;
  return townsCache;
}

function townSelect(id, selected) {
  return towns().then((list) => el("div", {},
    el("label", { for: id }, "Commune"),
    el("select", { id, name: id },
      el("option", { value: "" }, "Toutes les communes"),
      list.map((t) => el("option", { value: t.siret, selected: t.siret === selected }, t.name)))));
}

// ------------------------------------------------------------------ Délibérations

const STATUS_WORDS = { current: ["en vigueur", "ok"], corrected: ["corrigée", "warn"], withdrawn: ["retirée", "bad"] };
const ACTION_WORDS = { record: "Adoption", correct: "Correction", withdraw: "Retrait" };

function deliberationCard(d) {
  const c = d.current;
  const [statusText, statusClass] = STATUS_WORDS[d.status] || [d.status, ""];
  const outcome = c.VOTE_POUR > c.VOTE_CONTRE ? "adoptée" : "rejetée";
  return el("article", { class: "card" },
    el("h3", {}, c.DELIB_OBJET || "(sans objet)"),
    el("p", { class: "meta" }, `${d.town} — délibération ${c.DELIB_ID}, ${day(c.DELIB_DATE)}`),
    el("p", { class: "meta" }, `Matière ${c.DELIB_MATIERE_CODE} : ${c.DELIB_MATIERE_NOM || ""}`),
    el("p", {}, el("span", { class: `badge ${statusClass}` }, statusText), " ",
      el("span", { class: "badge" }, outcome)),
    el("ul", { class: "votes", "aria-label": "Votes" },
      el("li", {}, `${nf.format(c.VOTE_POUR)} pour`),
      el("li", {}, `${nf.format(c.VOTE_CONTRE)} contre`),
      el("li", {}, `${nf.format(c.VOTE_ABSTENTION ?? 0)} abstentions`),
      el("li", {}, `${nf.format(c.VOTE_REEL)} votants sur ${nf.format(c.VOTE_EFFECTIF)} élus`)),
    el("details", {},
      el("summary", {}, `${d.versions.length} version${d.versions.length > 1 ? "s" : ""} inscrite${d.versions.length > 1 ? "s" : ""}`),
      el("ol", {}, d.versions.map((v) => el("li", {},
        `${ACTION_WORDS[v.action] || v.action} ${v.DELIB_ID} — bloc ${nf.format(v.height)}, ${dateTime(v.time_ms)}`,
        v.reason ? ` (${v.reason})` : "", " ",
        el("a", { href: `#/verifier?tx=${v.tx_id}` }, "vérifier cette version"))))),
    el("p", {}, el("a", { class: "button-link", href: `#/verifier?tx=${d.tx_id}` },
      `Vérifier la délibération ${c.DELIB_ID}`)));
}

async function deliberations(params) {
  const town = params.get("commune") || "";
  const q = params.get("q") || "";
  const query = new URLSearchParams();
  if (town) query.set("town", town);
  if (q) query.set("q", q);
  const [body, select] = await Promise.all([getJson(`/v1/portal/deliberations?${query}`), townSelect("commune", town)]);
  const form = el("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    const data = new FormData(e.target);
    for (const key of ["commune", "q"]) if (data.get(key)) next.set(key, data.get(key));
    location.hash = `#/deliberations?${next}`;
  } },
  select,
  el("div", {}, el("label", { for: "q" }, "Objet, matière ou code ACTES"),
    el("input", { type: "search", id: "q", name: "q", value: q, maxlength: 100 })),
  el("button", { type: "submit" }, "Rechercher"));
  const list = body.deliberations;
  page("Délibérations", form, incomplete(body),
    el("p", { role: "status" }, list.length ? `${nf.format(list.length)} délibération${list.length > 1 ? "s" : ""}` : "Aucune délibération ne correspond."),
    list.map(deliberationCard));
}

// ------------------------------------------------------------------ Signalements

const REPORT_WORDS = { open: "déposé", acknowledged: "pris en compte", closed: "clos" };

function reportCard(r) {
  const first = r.history[0];
  return el("article", { class: "card" },
    el("h3", {}, `${r.service_name || r.service_code} — ${r.town}`),
    el("p", {}, el("span", { class: `badge ${r.status === "closed" ? "ok" : "warn"}` }, REPORT_WORDS[r.status] || r.status)),
    el("ol", { class: "history", "aria-label": "Historique du signalement" },
      r.history.map((h, i) => el("li", {},
        `${REPORT_WORDS[h.status] || h.status} le ${dateTime(h.time_ms)}`,
        i > 0 ? ` (${delay(h.time_ms - r.history[i - 1].time_ms)} après l'étape précédente)` : "",
        h.agency_responsible ? ` — service : ${h.agency_responsible}` : ""))),
    r.lat !== null && r.long !== null
      ? el("p", { class: "meta" }, `Lieu : ${(r.lat / 1e6).toFixed(4)}, ${(r.long / 1e6).toFixed(4)}`) : null,
    el("p", { class: "meta" }, `Déposé il y a ${delay(Date.now() - first.time_ms)}.`));
}

async function reports(params) {
  const town = params.get("commune") || "";
  const category = params.get("categorie") || "";
  const query = new URLSearchParams();
  if (town) query.set("town", town);
  if (category) query.set("category", category);
  const [body, all, select] = await Promise.all([
    getJson(`/v1/portal/reports?${query}`), getJson("/v1/portal/reports"), townSelect("commune", town)]);
  const categories = [...new Set(all.reports.map((r) => r.service_code))].sort();
  const form = el("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    const next = new URLSearchParams();
    if (data.get("commune")) next.set("commune", data.get("commune"));
    if (data.get("categorie")) next.set("categorie", data.get("categorie"));
    location.hash = `#/signalements?${next}`;
  } }, select,
  el("div", {}, el("label", { for: "categorie" }, "Catégorie"),
    el("select", { id: "categorie", name: "categorie" }, el("option", { value: "" }, "Toutes"),
      categories.map((c) => el("option", { value: c, selected: c === category }, c)))),
  el("button", { type: "submit" }, "Afficher"));
  page("Signalements", el("p", {}, "Les signalements des habitants (éclairage, voirie, fuites…) et le suivi de leur traitement. " +
    "Le texte libre et l'identité des habitants ne sont pas publiés."), form, incomplete(body),
  el("p", { role: "status" }, `${nf.format(body.reports.length)} signalement${body.reports.length > 1 ? "s" : ""}`),
  body.reports.map(reportCard));
}

// ------------------------------------------------------------------ Aides sociales

async function aid() {
  const body = await getJson("/v1/portal/aid");
  const groups = new Map();
  for (const a of body.aggregates) {
    const key = `${a.town} — dispositif ${a.scheme_id}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(a);
  }
  const largest = Math.max(1, ...body.aggregates.map((a) => a.total_cents ?? 0));
  const sections = [...groups].map(([title, rows]) => el("section", {},
    el("h2", {}, title),
    el("div", { class: "scroll" }, el("table", {},
      el("caption", { class: "meta" }, "Paiements par mois"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Mois"), el("th", { scope: "col" }, "Paiements"),
        el("th", { scope: "col" }, "Montant total"), el("th", { scope: "col" }, "Graphique"))),
      el("tbody", {}, rows.map((a) => el("tr", {},
        el("th", { scope: "row" }, a.month),
        el("td", {}, a.suppressed ? "secret statistique" : nf.format(a.payments)),
        el("td", {}, a.suppressed ? `moins de ${body.min_count} paiements : non publié` : euros.format(a.total_cents / 100)),
        el("td", {}, a.suppressed ? "—" : el("span", { class: "bar", style: null,
          "aria-hidden": "true", "data-width": Math.round(100 * a.total_cents / largest) })))))))));
  page("Aides sociales",
    el("p", {}, "Les aides versées par les centres communaux d'action sociale, en totaux par dispositif et par mois. " +
      `Aucun paiement individuel n'est publié ; un mois de moins de ${body.min_count} paiements n'est pas montré, ` +
      "car un petit nombre pourrait désigner un foyer."),
    incomplete(body),
    sections.length ? sections : el("p", {}, "Aucune aide n'a encore été versée."));
  // Widths are set here, not in a style attribute: the page's security policy forbids inline styles.
  for (const bar of main.querySelectorAll(".bar")) bar.style.width = `${bar.dataset.width}%`;
}

// ------------------------------------------------------------------ Documents notariés

async function documents() {
  const result = el("div", { "aria-live": "polite", id: "resultat-document" });
  const input = el("input", { type: "file", id: "document", name: "document" });
  const zone = el("label", { class: "drop", for: "document" },
    "Déposez le document ici, ou choisissez-le :", input);
  async function check(file) {
    if (!file) return;
    result.replaceChildren(el("p", {}, `Calcul de l'empreinte de « ${file.name} »…`));
    if (file.size > DOCUMENT_BYTES_MAX) {
      result.replaceChildren(problem("Ce fichier dépasse 2 Go : calculez son empreinte SHA-256 avec un outil de votre ordinateur."));
      return;
    }
    let digest;
    try {
      digest = hex(await sha256(new Uint8Array(await file.arrayBuffer())));
    } catch (e) {
      result.replaceChildren(problem(e instanceof CryptoUnavailable ? e.message : `Lecture impossible : ${e.message}`));
      return;
    }
    const shown = [el("p", {}, "Empreinte SHA-256 : ", el("span", { class: "hash", id: "empreinte" }, digest))];
    try {
      const { document: d } = await getJson(`/v1/portal/documents/${digest}`);
      shown.push(el("div", { class: "verdict ok", id: "ancrage" },
        el("h2", {}, "Document inscrit au registre"),
        el("p", {}, `${d.document_type} ${d.reference}${d.title ? ` — ${d.title}` : ""}`),
        el("p", {}, `Inscrit par ${d.town} au bloc ${nf.format(d.height)}, le ${dateTime(d.time_ms)}.`),
        el("p", {}, "Ce fichier est identique, octet pour octet, à celui qui a été inscrit à cette date."),
        d.tx_id ? el("p", {}, el("a", { href: `#/verifier?tx=${d.tx_id}` }, "Vérifier le reçu de cette inscription")) : null));
    } catch (e) {
      shown.push(e.status === 404
        ? el("div", { class: "verdict bad", id: "ancrage" }, el("h2", {}, "Document inconnu du registre"),
          el("p", {}, "Aucun document ayant exactement ce contenu n'a été inscrit. Un seul octet différent (une autre version, un autre format) donne une autre empreinte."))
        : problem(`Le nœud n'a pas pu répondre : ${e.message}`));
    }
    result.replaceChildren(...shown);
  }
  input.addEventListener("change", () => check(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); check(e.dataTransfer.files[0]); });
  page("Documents notariés",
    el("p", {}, "Vérifiez qu'un document (arrêté, contrat, procès-verbal) a été inscrit au registre, et quand. " +
      "Son empreinte est calculée dans votre navigateur : le fichier ne quitte pas votre appareil, seule l'empreinte est cherchée."),
    zone, result);
}

// ------------------------------------------------------------------ Vérifier un reçu

const PART_WORDS = [
  ["readable", "la copie lisible du reçu"],
  ["record.receipt_proof", "la preuve que le résultat a été certifié"],
  ["record.tx_proof", "la preuve que l'acte est dans son bloc"],
  ["record.results_block", "le bloc qui certifie le résultat"],
  ["record.block", "le bloc qui contient l'acte et ses signatures"],
  ["record.receipt", "le résultat de l'acte"],
  ["record.transaction", "l'acte lui-même et la signature de son auteur"],
  ["record", "l'acte"],
  ["validator_changes", "la chaîne des changements de validateurs depuis la genèse"],
  ["genesis_hash", "le lien avec le fichier de genèse"],
  ["chain_id", "le réseau"],
  ["format", "le format du fichier"],
  ["file", "le fichier"],
];

function partWords(part) {
  const found = PART_WORDS.find(([prefix]) => part === prefix || part.startsWith(`${prefix}.`) || part.startsWith(`${prefix}[`));
  return found ? found[1] : part;
}

function field(payload, name) { return payload instanceof Map ? payload.get(name) : undefined; }

/** One French sentence saying what a verified receipt proves. */
export function describe(facts, genesis) {
  const p = facts.transaction.payload;
  const tx = facts.transaction;
  const bySiret = new Map(genesis.municipalities.map((m) => [m.siret, m.name]));
  const signerTown = genesis.municipalities.find((m) => m.memberKeys.some((k) => hex(k) === hex(tx.signer)));
  const town = field(p, "COLL_NOM") || bySiret.get(field(p, "COLL_SIRET") || field(p, "siret")) || signerTown?.name;
  const de = town ? ` de ${town}` : "";
  let what;
  if (field(p, "DELIB_ID") !== undefined && tx.contract === "deliberations") {
    const pour = field(p, "VOTE_POUR");
    const contre = field(p, "VOTE_CONTRE");
    what = `Délibération ${field(p, "DELIB_ID")}${de}`;
    if (typeof pour === "number" && typeof contre === "number") {
      what += `, ${pour > contre ? "adoptée" : "rejetée"} par ${nf.format(pour)} voix pour, ${nf.format(contre)} contre` +
        ` et ${nf.format(field(p, "VOTE_ABSTENTION") ?? 0)} abstentions`;
    }
    if (field(p, "DELIB_OBJET")) what += ` (« ${field(p, "DELIB_OBJET")} »)`;
  } else if (tx.contract === "notary") {
    what = `Document ${field(p, "reference")} (${field(p, "document_type")}, empreinte SHA-256 ${String(field(p, "sha256")).slice(0, 16)}…)${de}`;
  } else if (tx.contract === "reports") {
    what = `Signalement « ${field(p, "service_code")} »${de} (${tx.action})`;
  } else if (tx.contract === "social_aid") {
    what = `Acte d'aide sociale « ${tx.action} »${de}`;
  } else {
    what = `Acte « ${tx.contract} ${tx.action} »${de}`;
  }
  const signers = facts.certificate.signatures.length;
  const refused = facts.receipt.code === "ok" ? "" :
    ` Il a été inscrit mais refusé par les règles (${facts.receipt.code} : ${facts.receipt.message}).`;
  return `${what}, inscrite au bloc ${nf.format(facts.height)} le ${dateTime(facts.header.timeMs)}, ` +
    `certifiée par ${signers} des ${facts.validators.n} validateurs.${refused}`;
}

async function readFile(file, max, what) {
  if (!file) throw new ReceiptError("file", `choisissez ${what}`);
  if (file.size > max) throw new ReceiptError("file", `${what} dépasse ${nf.format(max)} octets`);
  try {
    return parseJsonExact(await file.text());
  } catch (e) {
    throw new ReceiptError("file", `${what} n'est pas un JSON valide : ${e.message}`);
  }
}

/** Verify a receipt document against a genesis document; returns the verdict shown. */
export async function verdictOf(receiptDoc, genesisDoc) {
  let genesis;
  try {
    genesis = await readGenesis(genesisDoc);
  } catch (e) {
    if (e instanceof RecordError) return { ok: false, part: "genesis", reason: `le fichier de genèse est invalide : ${e.message}` };
    throw e;
  }
  try {
    const facts = await verifyReceipt(genesis, receiptDoc);
    return { ok: true, sentence: describe(facts, genesis), genesisHash: hex(genesis.genesisHash),
             txId: hex(facts.txId), changes: facts.validatorChanges };
  } catch (e) {
    if (e instanceof ReceiptError) return { ok: false, part: e.part, reason: e.reason, genesisHash: hex(genesis.genesisHash) };
    if (e instanceof CryptoUnavailable) return { ok: false, part: "browser", reason: e.message };
    throw e;
  }
}

function verdictView(v) {
  if (v.ok) {
    return el("div", { class: "verdict ok", id: "verdict", role: "status" },
      el("h2", {}, "Reçu vérifié"),
      el("p", { id: "phrase" }, v.sentence),
      el("p", {}, "Votre navigateur a vérifié lui-même : l'encodage canonique de l'acte, la signature de son auteur, " +
        "sa présence dans le bloc (preuve de Merkle), les signatures Ed25519 d'une majorité qualifiée des validateurs, " +
        `le résultat certifié, et ${v.changes} changement(s) de validateurs depuis la genèse.`),
      el("p", {}, "Identifiant de l'acte : ", el("span", { class: "hash" }, v.txId)),
      el("p", {}, "Fichier de genèse de confiance : ", el("span", { class: "hash", id: "genese" }, v.genesisHash)));
  }
  return el("div", { class: "verdict bad", id: "verdict", role: "alert" },
    el("h2", {}, "Reçu NON vérifié"),
    el("p", { id: "phrase" }, `Ce qui ne va pas : ${partWords(v.part)}.`),
    el("p", {}, "Vérification en échec : ", el("code", { id: "partie" }, v.part), ` — ${v.reason}`),
    el("p", {}, "Ce reçu ne prouve pas l'acte : il a été modifié, ou il n'appartient pas au réseau de ce fichier de genèse."),
    v.genesisHash ? el("p", {}, "Fichier de genèse utilisé : ", el("span", { class: "hash", id: "genese" }, v.genesisHash)) : null);
}

async function verify(params) {
  const tx = params.get("tx");
  const result = el("div", { "aria-live": "polite", id: "resultat" });
  const receiptInput = el("input", { type: "file", id: "fichier-recu", accept: ".json,application/json" });
  const genesisInput = el("input", { type: "file", id: "fichier-genese", accept: ".json,application/json" });
  let fetched = null;
  const hint = tx ? el("div", { class: "card", id: "recu-du-noeud" }, el("p", {}, "Recherche du reçu de l'acte ",
    el("span", { class: "hash" }, tx), " sur ce nœud…")) : null;
  if (tx && /^[0-9a-f]{64}$/.test(tx)) {
    fetch(`/v1/receipts/${tx}`).then(async (r) => {
      if (!r.ok) throw new Error(String(r.status));
      const textBody = await r.text();
      fetched = parseJsonExact(textBody);
      const link = el("a", { href: URL.createObjectURL(new Blob([textBody], { type: "application/json" })), download: `recu-${tx.slice(0, 16)}.json` }, "enregistrer ce reçu");
      hint.replaceChildren(el("p", {}, "Le reçu a été obtenu de ce nœud (vous pouvez aussi ", link,
        "). Il reste à choisir le fichier de genèse : le nœud n'est pas cru sur parole."));
    }).catch(() => {
      hint.replaceChildren(el("p", {}, "Ce nœud ne fournit pas le reçu de cet acte. Demandez-le à la mairie, ou obtenez-le avec la commande :"),
        el("p", {}, el("code", {}, `tabellion receipt get ${tx} --node <adresse du nœud> --genesis genesis.json --out recu.json`)));
    });
  }
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    result.replaceChildren(el("p", {}, "Vérification en cours…"));
    let v;
    try {
      const receiptDoc = receiptInput.files[0] || !fetched
        ? await readFile(receiptInput.files[0], RECEIPT_FILE_BYTES_MAX, "le fichier de reçu") : fetched;
      const genesisDoc = await readFile(genesisInput.files[0], GENESIS_BYTES_MAX, "le fichier de genèse");
      v = await verdictOf(receiptDoc, genesisDoc);
    } catch (err) {
      if (!(err instanceof ReceiptError)) throw err;
      v = { ok: false, part: err.part, reason: err.reason };
    }
    result.replaceChildren(verdictView(v));
    result.querySelector("h2").setAttribute("tabindex", "-1");
    result.querySelector("h2").focus();
  } },
  el("div", { class: "field" }, el("label", { for: "fichier-recu" }, "Fichier du reçu (JSON)"), receiptInput),
  el("div", { class: "field" }, el("label", { for: "fichier-genese" }, "Fichier de genèse du réseau (JSON)"), genesisInput),
  el("p", {}, el("button", { type: "submit", id: "verifier" }, "Vérifier")));
  page("Vérifier un reçu",
    el("p", {}, "Un reçu prouve qu'un acte (délibération, document, signalement…) a été inscrit au registre, quand, et par quelles communes il a été certifié. " +
      "La vérification se fait entièrement dans votre navigateur ; elle ne fait confiance qu'au fichier de genèse que vous choisissez."),
    el("p", { class: "note" }, "Prenez le fichier de genèse sur le site officiel de votre mairie (ou de la préfecture), pas sur ce nœud : " +
      "un nœud malhonnête pourrait fournir une fausse genèse qui validerait de faux reçus. Comparez l'empreinte affichée après la vérification avec celle publiée par la mairie."),
    hint, form, result);
}

// ------------------------------------------------------------------ État du réseau

async function network() {
  const n = await getJson("/v1/portal/network");
  page("État du réseau",
    el("p", {}, `Réseau ${n.chain_id} : ${nf.format(n.height)} blocs inscrits, ${n.validators.length} validateurs. ` +
      `Vue ${n.view}${n.view_active ? "" : " (changement de vue en cours)"}, meneur : ${n.primary}.`),
    el("p", {}, "Empreinte de la genèse annoncée par ce nœud : ", el("span", { class: "hash" }, n.genesis_hash)),
    el("h2", {}, "Validateurs"),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Commune"), el("th", { scope: "col" }, "Dernière signature"), el("th", { scope: "col" }, "Clé"))),
      el("tbody", {}, n.validators.map((v) => el("tr", {},
        el("th", { scope: "row" }, v.town || "inconnue"),
        el("td", {}, v.last_signed_height ? `bloc ${nf.format(v.last_signed_height)}` : "aucune parmi les derniers blocs"),
        el("td", { class: "hash" }, `${v.key.slice(0, 16)}…`)))))),
    el("h2", {}, "Derniers blocs"),
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Bloc", "Date", "Actes", "Proposé par", "Signatures"].map((t) => el("th", { scope: "col" }, t)))),
      el("tbody", {}, n.blocks.map((b) => el("tr", {},
        el("th", { scope: "row" }, nf.format(b.height)), el("td", {}, dateTime(b.time_ms)),
        el("td", {}, nf.format(b.transactions)), el("td", {}, b.proposer), el("td", {}, b.signatures)))))));
}

// ------------------------------------------------------------------ routing

const ROUTES = { deliberations, signalements: reports, aides: aid, documents, verifier: verify, reseau: network };

async function route() {
  const [name, query] = (location.hash.replace(/^#\//, "") || "deliberations").split("?");
  const show = ROUTES[name] || deliberations;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${name in ROUTES ? name : "deliberations"}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.ready = "false";
  try {
    await show(new URLSearchParams(query || ""));
  } catch (e) {
    page("Le registre ne répond pas", problem(`Le nœud n'a pas pu répondre (${e.message}). Réessayez dans un instant.`));
  }
  document.body.dataset.page = name in ROUTES ? name : "deliberations";
  document.body.dataset.ready = "true";
}

window.addEventListener("hashchange", () => { route().then(() => main.focus()); });
route();
