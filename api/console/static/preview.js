// The preview's live parts: the champion's score and verdict, and the heat map's opacity.
import { api, root } from "./console.js";

const card = document.getElementById("prediction");
const heatmap = document.getElementById("heatmap");
const slider = document.getElementById("opacity");
const shown = document.getElementById("opacity-value");

export function showPrediction(prediction, scoreElement, verdictElement) {
  scoreElement.textContent = prediction.score.toFixed(3);
  const anomalous = prediction.label === "anomalous";
  verdictElement.className = `badge ${anomalous ? "label-anomalous" : "label-normal"}`;
  verdictElement.textContent = `${anomalous ? "⚠" : "✓"} ${prediction.label}`;
}

if (card?.dataset.modelId) {
  const status = document.getElementById("prediction-status");
  status.textContent = "Scoring…";
  const query = `model_id=${encodeURIComponent(card.dataset.modelId)}`;
  api(`${root}/api/media/${card.dataset.mediaId}/prediction?${query}`)
    .then((prediction) => {
      showPrediction(prediction, document.getElementById("score"), document.getElementById("verdict"));
      status.textContent = `threshold ${prediction.threshold}`;
    })
    .catch((error) => {
      status.textContent = error.message;
      if (heatmap) heatmap.hidden = true;
    });
}

if (slider && heatmap) {
  const apply = () => {
    heatmap.style.opacity = String(Number(slider.value) / 100);
    shown.textContent = `${slider.value} %`;
    const url = new URL(window.location.href);
    url.searchParams.set("opacity", slider.value);
    url.searchParams.delete("changed");
    window.history.replaceState(null, "", url);
  };
  slider.addEventListener("input", apply);
  heatmap.addEventListener("error", () => { heatmap.hidden = true; });
}
