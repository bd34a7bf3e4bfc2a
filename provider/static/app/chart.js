// The overview's messages-per-day chart, drawn with uPlot from the counts in #chart's data-chart.
"use strict";

const COLOURS = {
  "inbound accepted": "#1d7a3a",
  "inbound rejected": "#b3261e",
  "inbound deferred": "#c77c00",
  "outbound delivered": "#1565c0",
  "outbound bounced": "#7b1fa2",
};

function drawChart(node) {
  const data = JSON.parse(node.dataset.chart);
  const days = data.days.map((day) => Date.parse(day + "T00:00:00Z") / 1000);
  const names = Object.keys(data.series);
  const options = {
    width: node.clientWidth,
    height: 300,
    scales: { x: { time: true } },
    axes: [{}, { label: "messages" }],
    series: [{ label: "day" }].concat(names.map((name) => ({
      label: name,
      stroke: COLOURS[name] || "#555",
      width: 2,
      points: { show: days.length < 40 },
    }))),
  };
  const plot = new uPlot(options, [days].concat(names.map((name) => data.series[name])), node);
  window.addEventListener("resize", () => plot.setSize({ width: node.clientWidth, height: 300 }));
}

document.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("chart");
  if (node) drawChart(node);
});
