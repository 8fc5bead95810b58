// The dashboard's types, for the type check only (`tsc --checkJs`, see scripts/check-dashboard.sh):
// this module exports nothing at run time and no page imports it; files name its types in JSDoc as
// `import("./types.js").Task`.
//
// The API's shapes come from the relay's own OpenAPI document (tools/dashboard/openapi.json,
// turned into tools/dashboard/openapi.d.ts by openapi-typescript), so a field renamed or removed in
// the relay fails the type check wherever the dashboard still uses it.

/** @typedef {import("../../../tools/dashboard/openapi").components["schemas"]} Schemas */

/** @typedef {Schemas["Task"]} Task */
/** @typedef {Schemas["TaskState"]} TaskState */
/** @typedef {Schemas["TaskSource"]} TaskSource */
/** @typedef {Schemas["TestSummary"]} TestSummary */
/** @typedef {Schemas["TestFailure"]} TestFailure */
/** @typedef {Schemas["RunBody"]} RunBody */
/** @typedef {Schemas["LogPage"]} LogPage */
/** @typedef {Schemas["Workspace"]} Workspace */
/** @typedef {Schemas["RepoRecord"]} RepoRecord */
/** @typedef {Schemas["ChangedPath"]} ChangedPath */
/** @typedef {Schemas["CoderFacts"]} CoderFacts */
/** @typedef {Schemas["Presence"]} Presence */
/** @typedef {Schemas["Project"]} Project */
/** @typedef {Schemas["ProjectBody"]} ProjectBody */
/** @typedef {Schemas["ProjectStatus"]} ProjectStatus */
/** @typedef {Schemas["ProjectGeneration"]} ProjectGeneration */
/** @typedef {Schemas["Deployment"]} Deployment */
/** @typedef {Schemas["DeploymentState"]} DeploymentState */
/** @typedef {Schemas["DeploymentSource"]} DeploymentSource */
/** @typedef {Schemas["Role"]} Role */
/** @typedef {Schemas["Member"]} Member */
/** @typedef {Schemas["Invitation"]} Invitation */
/** @typedef {Schemas["Token"]} Token */
/** @typedef {Schemas["CreatedToken"]} CreatedToken */
/** @typedef {Schemas["NewTokenBody"]} NewTokenBody */
/** @typedef {Schemas["TokenKind"]} TokenKind */
/** @typedef {Schemas["Scope"]} Scope */
/** @typedef {Schemas["Revoked"]} Revoked */
/** @typedef {Schemas["User"]} User */
/** @typedef {Schemas["UserRole"]} UserRole */
/** @typedef {Schemas["UserView"]} UserView */
/** @typedef {Schemas["MeChange"]} MeChange */
/** @typedef {Schemas["Preferences"]} Preferences */
/** @typedef {Schemas["Theme"]} Theme */
/** @typedef {Schemas["PasswordChanged"]} PasswordChanged */
/** @typedef {Schemas["ResetLink"]} ResetLink */
/** @typedef {Schemas["TokenPair"]} TokenPair */
/** @typedef {Schemas["Ticket"]} Ticket */
/** @typedef {Schemas["ConsentRequest"]} ConsentRequest */
/** @typedef {Schemas["ConsentBody"]} ConsentBody */
/** @typedef {Schemas["ConsentAnswer"]} ConsentAnswer */
/** @typedef {Schemas["LlmProvider"]} LlmProvider */
/** @typedef {Schemas["ProviderInput"]} ProviderInput */
/** @typedef {Schemas["ProviderPatch"]} ProviderPatch */
/** @typedef {Schemas["ProviderKind"]} ProviderKind */
/** @typedef {Schemas["Budget"]} Budget */
/** @typedef {Schemas["BudgetView"]} BudgetView */
/** @typedef {Schemas["BudgetInput"]} BudgetInput */
/** @typedef {Schemas["BudgetPeriod"]} BudgetPeriod */
/** @typedef {Schemas["RunView"]} RunView */
/** @typedef {Schemas["RunState"]} RunState */
/** @typedef {Schemas["StageView"]} StageView */
/** @typedef {Schemas["RecoveryRound"]} RecoveryRound */
/** @typedef {Schemas["StageState"]} StageState */
/** @typedef {Schemas["StageKind"]} StageKind */
/** @typedef {Schemas["RunUsage"]} RunUsage */
/** @typedef {Schemas["StartRun"]} StartRun */
/** @typedef {Schemas["Decision"]} Decision */
/** @typedef {Schemas["ResumeRun"]} ResumeRun */
/** @typedef {Schemas["CallView"]} CallView */
/** @typedef {Schemas["ArtifactMeta"]} ArtifactMeta */
/** @typedef {Schemas["Activity"]} Activity */
/** @typedef {Schemas["ActivitySource"]} ActivitySource */
/** @typedef {Schemas["ActivityCategory"]} ActivityCategory */
/** @typedef {Schemas["CodeChange"]} CodeChange */
/** @typedef {Schemas["Report"]} Report */
/** @typedef {Schemas["ReportRow"]} ReportRow */
/** @typedef {Schemas["Figures"]} Figures */
/** @typedef {Schemas["GroupKey"]} GroupKey */
/** @typedef {Schemas["Dimension"]} Dimension */
/** @typedef {Schemas["UsageCounter"]} UsageCounter */
/** @typedef {Schemas["AiSettings"]} AiSettings */
/** @typedef {Schemas["EndpointView"]} EndpointView */
/** @typedef {Schemas["EndpointInput"]} EndpointInput */
/** @typedef {Schemas["EndpointPatch"]} EndpointPatch */
/** @typedef {Schemas["EndpointWithSecret"]} EndpointWithSecret */
/** @typedef {Schemas["WebhookEventKind"]} WebhookEventKind */
/** @typedef {Schemas["Delivery"]} Delivery */
/** @typedef {Schemas["DeliveryState"]} DeliveryState */
/** @typedef {Schemas["Attempt"]} Attempt */
/** @typedef {Schemas["TestEvent"]} TestEvent */

/**
 * A project's health in one word. The OpenAPI document names this `Health` too, and that name
 * is taken by the relay's readiness answer, so `ProjectReport.health` points at the wrong schema
 * there: this is the relay's `Health` enum (protocol/src/kinds.rs) until the document is fixed.
 * @typedef {"running" | "failing" | "healthy" | "offline" | "idle"} ProjectHealth
 */
/** @typedef {Omit<Schemas["ProjectReport"], "health"> & { health: ProjectHealth }} ProjectReport */

/**
 * A webhook delivery with its attempts (`attempt_log`; `attempts` is their count).
 * @typedef {Schemas["DeliveryDetail"]} DeliveryDetail
 */

/**
 * The query of GET /api/v1/ai-activities/report (`group_by`: up to three of day, project, user,
 * tool, model, category, comma-separated).
 * @typedef {{ project?: string, user?: string, tool?: string, model?: string, from?: string, to?: string, group_by?: string }} ReportQuery
 */

/**
 * The query of GET /api/v1/ai-activities, newest first (`before`: the next page).
 * @typedef {{ project?: string, tool?: string, with_changes?: boolean, before?: string, limit?: number }} ActivityQuery
 */

/**
 * The query of GET /api/v1/webhooks/{id}/deliveries, newest first (`before`: the last id of the
 * page before; `limit`: 1 to 200, 50 unless given).
 * @typedef {{ before?: string, limit?: number }} DeliveryQuery
 */

/** `meta` of a page of tasks. @typedef {{ page?: number, per_page?: number, total?: number }} PageMeta */

/**
 * The query of GET /api/v1/tasks. `source` is asked for by the dashboard's source filter; a relay
 * that does not know it yet ignores it (the list filters the page it gets as well).
 * @typedef {{ project?: string, workspace?: string, state?: string, source?: string, page?: number, per_page?: number }} TaskQuery
 */

// ---------------------------------------------------------------- the events socket
//
// Not in the OpenAPI document: relay/src/events.rs describes these messages.

/**
 * A piece of a stage's LLM answer, as it is written.
 * @typedef {{ type: "pipeline_text", run: string, stage: string, attempt: number, text: string }} PipelineText
 */

/**
 * An AI activity as the socket announces it (an LLM call through Fulcrum was recorded): the list
 * loads the whole record.
 * @typedef {object} ActivityEvent
 * @property {string} id
 * @property {string | null} [project_id]
 * @property {ActivitySource} source
 * @property {string} tool
 * @property {string | null} [model]
 * @property {number} cost_micros
 * @property {string} occurred_at
 */

/**
 * A budget's spending crossed 80 % or 100 % of its limit in its period (raised once per period
 * and level, to the budget's owner or the project's members).
 * @typedef {object} BudgetAlert
 * @property {string} budget_id
 * @property {string | null} [project_id]
 * @property {BudgetPeriod} period
 * @property {number} level 80 or 100
 * @property {number} limit_usd
 * @property {number} spent_usd
 */

/**
 * @typedef {{ type: "snapshot", workspaces: Workspace[] }
 *   | { type: "workspace", workspace: Workspace }
 *   | { type: "task", task: Task }
 *   | { type: "pipeline_run", run: RunView }
 *   | PipelineText
 *   | { type: "log", task: string, offset: number, data: string }
 *   | { type: "log_end", task: string, offset: number }
 *   | { type: "error", task?: string, message?: string }
 *   | { type: "ai_activity", activity: ActivityEvent }
 *   | { type: "budget_alert", alert: BudgetAlert }
 *   | { type: "ping" }} EventMessage
 */

/** The events socket's state. @typedef {"connecting" | "live" | "reconnecting" | "stopped"} LiveState */

// ---------------------------------------------------------------- the dashboard's own

/**
 * A page built when its route is entered and destroyed when it is left. It hears about task,
 * workspace and pipeline run changes and about the socket's state.
 * @typedef {object} Page
 * @property {string} [key] the route it was built for
 * @property {HTMLElement} root
 * @property {HTMLElement} [heading] focused after navigating to it
 * @property {string | null} nav the navigation entry it belongs to
 * @property {() => string} title the document title (before " · Fulcrum")
 * @property {() => void} [destroy]
 * @property {(t: Task) => void} [onTask]
 * @property {() => void} [onWorkspaces]
 * @property {(s: LiveState) => void} [onLive]
 * @property {(r: RunView) => void} [onPipelineRun] a pipeline run (of a project the user sees) changed
 * @property {(m: PipelineText) => void} [onPipelineText] the next piece of a stage's answer
 * @property {(a: ActivityEvent) => void} [onAiActivity] an AI activity (of the user's or a project's) was recorded
 */

/** A parsed route. @typedef {{ view: string, id?: string }} Route */

/**
 * `h()`'s element type from its spec: "input.mono" -> HTMLInputElement, ".x" -> HTMLDivElement.
 * @template {string} S
 * @typedef {S extends `${infer T}.${string}` ? TagElement<T> : TagElement<S>} ElementOf
 */
/**
 * @template {string} T
 * @typedef {T extends "" ? HTMLDivElement : T extends keyof HTMLElementTagNameMap ? HTMLElementTagNameMap[T] : HTMLElement} TagElement
 */

/** @typedef {Node | string | number | null | undefined | false} Leaf */
/** What `h()` accepts as children: nodes, text, nothing, and lists of them. @typedef {Leaf | (Leaf | Leaf[])[]} Child */

/** `h()`'s attributes: properties, `on…` listeners, `dataset`, `text`, other attributes. @typedef {Record<string, unknown>} Attrs */

export {};
