"""The one-pager's HTML (A4, printed by Chromium): the words around the measured figures."""

from __future__ import annotations

from string import Template

STYLE = """
@page { size: A4; margin: 9mm 12mm; }
* { box-sizing: border-box; }
body { font-family: 'DejaVu Sans', sans-serif; font-size: 9pt; color: #1d2433; margin: 0;
       line-height: 1.35; }
h1 { font-size: 17pt; margin: 0 0 0.5mm; color: #0b3d91; }
.tagline { font-size: 10.5pt; color: #444; margin: 0 0 3mm; }
h2 { font-size: 11pt; color: #0b3d91; margin: 2.8mm 0 1.2mm; border-bottom: 1px solid #c9d3e6;
     padding-bottom: 0.6mm; }
p { margin: 0 0 1.5mm; }
.cols { display: flex; gap: 6mm; }
.cols > div { flex: 1; }
.kpis { display: flex; gap: 2.5mm; margin: 1.5mm 0; }
.kpi { flex: 1; border: 1px solid #c9d3e6; border-radius: 2mm; padding: 1.8mm 2mm;
       background: #f4f7fc; }
.kpi b { display: block; font-size: 14pt; color: #0b3d91; }
.kpi span { font-size: 8pt; color: #555; }
.flow { display: flex; align-items: stretch; gap: 1.2mm; margin: 1mm 0; font-size: 8pt; }
.flow div { border: 1px solid #7d93c2; border-radius: 1.5mm; padding: 1mm 1.5mm;
            background: #fff; flex: 1; text-align: center; }
.flow .arrow { border: none; flex: 0 0 3mm; padding: 1mm 0; background: none; color: #7d93c2; }
.lane { font-size: 8pt; color: #555; margin-top: 1.5mm; }
table { border-collapse: collapse; width: 100%; font-size: 8.4pt; }
td, th { border-bottom: 1px solid #dde3ee; padding: 0.6mm 1.5mm; text-align: left; }
th { color: #0b3d91; }
td.num { text-align: right; white-space: nowrap; }
ul { margin: 0; padding-left: 4.5mm; } li { margin-bottom: 0.6mm; }
.foot { margin-top: 2mm; font-size: 7.5pt; color: #666; }
code { font-size: 8pt; }
"""

BODY = Template("""
<h1>Vigil</h1>
<p class="tagline">Real-time card-fraud detection with the whole model lifecycle:
decisions in milliseconds, explained, priced, monitored and safely replaced.</p>

<h2>The problem and what it is worth</h2>
<p>Every card payment waits for a fraud decision. A missed fraud costs the issuer about
<b>$missed_cost</b> (chargeback, fees); blocking a good payment costs about <b>$alarm_cost</b>
(support, a customer who stops using the card). Vigil scores each payment, explains the
decision with reason codes and sets its threshold where the expected cost is lowest.</p>
<div class="kpis">
  <div class="kpi"><b>$saved_share</b><span>of the fraud cost removed on the test week
  (one run of the shipped model), against approving everything</span></div>
  <div class="kpi"><b>$per_million</b><span>saved per million payments
  (same cost units)</span></div>
  <div class="kpi"><b>$recall</b><span>of frauds stopped, at $precision precision
  of the alerts</span></div>
</div>

<div class="cols"><div>
<h2>The data</h2>
<p>The Fraud Detection Handbook's published transactions (Le Borgne et al., 2022):
<b>$rows</b> payments over <b>$days</b> days from <b>$customers</b> customers at
<b>$terminals</b> terminals, fraud rate <b>$fraud_rate</b>, three fraud scenarios
(large amounts, compromised terminals, compromised cards). Vigil's own simulator adds
drift scenarios for retraining drills. Contracts reject bad data; labels arrive late, so
risk features only use labels older than 7 days (see the EDA report).</p>
</div><div>
<h2>Stack</h2>
<ul>
<li>Python 3.11, FastAPI, ONNX Runtime (serving never imports torch)</li>
<li>PyTorch MLP, LightGBM, logistic regression; compiled (numba) feature kernels, same
values online</li>
<li>Redis online state, PostgreSQL decisions, RabbitMQ stream with dead-lettering</li>
<li>MLflow runs and registry (champion / challenger), DVC data versions, Dagster jobs</li>
<li>Prometheus, Grafana, Evidently drift; Streamlit UI; Docker Compose and Kubernetes</li>
</ul>
</div></div>

<h2>Architecture</h2>
<div class="lane">online, per payment</div>
<div class="flow">
  <div>POST /predict<br>or RabbitMQ worker</div><div class="arrow">&rarr;</div>
  <div>online features<br>(Redis state)</div><div class="arrow">&rarr;</div>
  <div>ONNX scorer<br>champion + shadow challenger</div><div class="arrow">&rarr;</div>
  <div>cost-based decision<br>+ reason codes</div><div class="arrow">&rarr;</div>
  <div>group commit<br>PostgreSQL</div>
</div>
<div class="lane">offline, daily and on drift</div>
<div class="flow">
  <div>raw Parquet by day<br>(DVC)</div><div class="arrow">&rarr;</div>
  <div>feature table<br>(compiled kernels)</div><div class="arrow">&rarr;</div>
  <div>train + evaluate<br>(AP, CP@100, cost)</div><div class="arrow">&rarr;</div>
  <div>MLflow registry<br>promotion gate</div><div class="arrow">&rarr;</div>
  <div>hot-swap deploy<br>no restart</div>
</div>
<div class="lane">analysts, every day</div>
<div class="flow">
  <div>case queue GET /cases<br>top $review_budget cards by score</div>
  <div class="arrow">&rarr;</div>
  <div>a verdict in one key<br>(UI or API)</div><div class="arrow">&rarr;</div>
  <div>labels + verdict features<br>online at once</div><div class="arrow">&rarr;</div>
  <div>queue precision (live CP@k)<br>in the performance marts</div>
</div>
<div class="lane">watching: Prometheus metrics and alerts, Grafana dashboards, drift and
delayed-label performance marts (Dagster), labels fed back through the API or the queue.</div>

<h2>Measured</h2>
<table>
<tr><th>what</th><th>Vigil</th><th>reference</th></tr>
<tr><td>Average precision, handbook test week (shipped $model, $seeds seeds)</td>
  <td class="num"><b>$ap</b></td>
  <td>published best $ap_published (chapter-3 split: $ap_chapter3)</td></tr>
<tr><td>Card precision@100, same runs</td><td class="num"><b>$cp</b></td>
  <td>published best $cp_published (chapter-3 split: $cp_chapter3)</td></tr>
<tr><td>Card precision@100 with analysts' verdicts ($review_budget cards reviewed a day,
  simulated), same seeds</td><td class="num"><b>$cp_feedback</b></td>
  <td>target $cp_target: $cp_target_status; AP $ap_feedback</td></tr>
<tr><td>POST /predict (Redis features, PostgreSQL commit), $connections connections, 1 core</td>
  <td class="num"><b>$predict_rps req/s</b></td><td>p99 <b>$predict_p99 ms</b> at load
  $api_load; server CPU: $predict_per_core req/s per dedicated core</td></tr>
<tr><td>Stream worker (RabbitMQ &rarr; features &rarr; score &rarr; PostgreSQL), 1 worker</td>
  <td class="num"><b>$stream_tps tx/s</b></td><td>p99 $stream_p99 ms at load $stream_load;
  worker CPU: $stream_per_core tx/s per dedicated core</td></tr>
</table>
<p class="foot">Measured on a $cpus-core VM (API $api_date, stream $stream_date):
wall-clock rates fall with the load average shown; CPU per request is the steady figure.
Every number is read from files written by <code>vigil eda</code>,
<code>vigil experiments --results</code>, <code>vigil evaluate --feedback --results</code> and
<code>benchmarks/bench_{api,stream}.py</code>; <code>make one-pager</code> rebuilds the page
(details: README, docs/MODEL_CARD.md, docs/benchmarks.md).</p>
""")


def render(values: dict[str, str]) -> str:
    """The page with ``values`` filled in (every ``$name`` must be given)."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Vigil one-pager</title>"
        f"<style>{STYLE}</style></head><body>{BODY.substitute(values)}</body></html>"
    )
