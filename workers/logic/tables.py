"""Every number and word list the shipped stage logic uses, in one place.

Each figure carries its public source in a comment (or in its ``source`` field, which also travels
in the outputs' ``extra_data``). Figures without a public source are marked ``estimate``.
Conventions: MACs = multiply-accumulates (FLOPs = 2 x MACs); memory in decimal MB (1e6 bytes)
except where a user writes "GB" in a requirement (see ``SIZE_UNIT_MB``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# ------------------------------------------------------------------------------------------------
# ML_MODEL_METADATA: modalities, goals and the keyword-scoring table
# ------------------------------------------------------------------------------------------------

#: Goals the backbone knows, in tie-break order (earlier wins an equal score).
GOALS: Final[tuple[str, ...]] = (
    "image-classification",
    "object-detection",
    "image-segmentation",
    "text-classification",
    "summarization",
    "translation",
    "text-generation",
    "automatic-speech-recognition",
    "time-series-forecasting",
    "tabular-classification",
)

#: Canonical modalities (Hugging Face Hub "cover tags", as upstream uses them) and their goals; the
#: first goal of each is the best guess when no keyword matched. Time series sit under "tabular"
#: as on the Hub's task page.
MODALITY_GOALS: Final[dict[str, tuple[str, ...]]] = {
    "cv": ("image-classification", "object-detection", "image-segmentation"),
    "nlp": ("text-classification", "summarization", "translation", "text-generation"),
    "audio": ("automatic-speech-recognition",),
    "tabular": ("tabular-classification", "time-series-forecasting"),
}

#: Free-text modality words (UserInput.modality, upstream GUI and wp4 ResearchData.csv values)
#: mapped to canonical modalities; matched on lower-cased alphanumeric words.
MODALITY_ALIASES: Final[dict[str, str]] = {
    "cv": "cv",
    "image": "cv",
    "images": "cv",
    "video": "cv",
    "vision": "cv",
    "camera": "cv",
    "photo": "cv",
    "photos": "cv",
    "picture": "cv",
    "pictures": "cv",
    "nlp": "nlp",
    "text": "nlp",
    "language": "nlp",
    "document": "nlp",
    "documents": "nlp",
    "audio": "audio",
    "speech": "audio",
    "sound": "audio",
    "voice": "audio",
    "tabular": "tabular",
    "table": "tabular",
    "tablerow": "tabular",
    "sensor": "tabular",
    "sensordata": "tabular",
    "timeseries": "tabular",  # also matched across two words: "time series", "time-series"
    "csv": "tabular",
    "structured": "tabular",
}

#: Bonus added to a goal's keyword score when it belongs to the user's modality.
MODALITY_BONUS: Final = 2.0

#: Best guess when neither keywords nor the modality say anything: the most generic supervised
#: task (estimate; a later issue replaces this with a trained classifier).
FALLBACK_GOAL: Final = "tabular-classification"

_LANGS = (
    "english|spanish|french|german|italian|portuguese|dutch|chinese|mandarin|japanese|korean|"
    "arabic|russian|hindi|catalan|basque|greek|polish|swedish|turkish"
)

#: Keyword triggers per goal: (regex fragment, weight). Each fragment is matched once (presence,
#: not frequency) against the lower-cased description + definition, anchored at a word start
#: (``\b(?:fragment)``), so "summar" matches "summarize" and "summary". Weights: 3 = names the
#: task, 2 = strong cue, 1 = weak cue shared by several goals (the modality bonus then decides).
#: Hand-written from the Hub task vocabulary (estimation-sources.md section 13); no weights learned.
GOAL_TRIGGERS: Final[dict[str, tuple[tuple[str, float], ...]]] = {
    "image-classification": (
        (r"image classif", 3.0),
        (r"classif\w* (?:\w+ )?(?:images?|photos?|pictures?|x-rays?|scans?)", 3.0),
        (r"classif", 1.0),
        (r"categori", 1.0),
        (r"recogni", 1.0),
        (r"species", 1.0),
        (r"defect", 1.0),
        (r"images?\b", 1.0),
        (r"photo", 1.0),
        (r"pictures?\b", 1.0),
        (r"x-rays?\b", 1.0),
    ),
    "object-detection": (
        (r"object detect", 3.0),
        (r"bounding box", 3.0),
        (r"yolo", 3.0),
        (r"detect", 2.0),
        (r"locali[sz]", 2.0),
        (r"pedestrian", 2.0),
        (r"count\w* (?:\w+ )?(?:cars?|people|persons?|objects?|vehicles?|cells?)", 2.0),
        (r"vehicle", 1.0),
        (r"surveillance", 1.0),
        (r"track", 1.0),
    ),
    "image-segmentation": (
        (r"segment", 3.0),
        (r"u-?net", 3.0),
        (r"pixel", 2.0),
        (r"masks?\b", 2.0),
        (r"delineat", 2.0),
        (r"outline", 1.0),
        (r"tumou?r", 1.0),
        (r"lesion", 1.0),
        (r"boundar", 1.0),
    ),
    "text-classification": (
        (r"text classif", 3.0),
        (r"sentiment", 3.0),
        (r"spam\b", 3.0),
        (r"classif\w* (?:\w+ )?(?:texts?|emails?|reviews?|tweets?|messages?|documents?|tickets?)", 3.0),
        (r"toxic", 2.0),
        (r"intent", 2.0),
        (r"topics?\b", 2.0),
        (r"classif", 1.0),
        (r"categori", 1.0),
        (r"reviews?\b", 1.0),
        (r"emails?\b", 1.0),
        (r"tweets?\b", 1.0),
        (r"opinion", 1.0),
    ),
    "summarization": (
        (r"summar", 3.0),
        (r"tl;?dr", 3.0),
        (r"condens", 2.0),
        (r"shorten", 2.0),
        (r"key points?\b", 2.0),
        (r"digest", 1.0),
        (r"abstract", 1.0),
        (r"long (?:documents?|articles?|reports?|texts?)", 1.0),
    ),
    "translation": (
        (r"translat", 3.0),
        (rf"from (?:{_LANGS}) (?:to|into) (?:{_LANGS})", 3.0),
        (r"language pairs?\b", 2.0),
        (r"multilingual", 1.0),
        (rf"(?:to|into) (?:{_LANGS})\b", 1.0),
        (r"locali[sz]ation", 1.0),
    ),
    "text-generation": (
        (r"text generat", 3.0),
        (r"chatbot", 3.0),
        (r"chat\b", 2.0),
        (r"dialog", 2.0),
        (r"conversation", 2.0),
        (r"stor(?:y|ies)\b", 2.0),
        (r"auto-?complet", 2.0),
        (r"assistant", 2.0),
        (r"llm", 2.0),
        (r"gpt", 2.0),
        (r"generat", 1.0),
        (r"writ", 1.0),
        (r"prompt", 1.0),
        (r"answer", 1.0),
    ),
    "automatic-speech-recognition": (
        (r"speech recogni", 3.0),
        (r"speech.to.text", 3.0),
        (r"transcri", 3.0),
        (r"dictat", 2.0),
        (r"spoken", 2.0),
        (r"speech", 2.0),
        (r"voice", 1.0),
        (r"audio", 1.0),
        (r"recogni", 1.0),
        (r"subtitl", 1.0),
    ),
    "time-series-forecasting": (
        (r"forecast", 3.0),
        (r"time.series", 3.0),
        (r"predict\w* (?:the )?(?:future|next|upcoming)", 3.0),
        (r"next (?:\d+ )?(?:hours?|days?|weeks?|months?|years?)\b", 2.0),
        (r"demand", 2.0),
        (r"seasonal", 2.0),
        (r"horizon", 2.0),
        (r"sensors?\b", 1.0),
        (r"trend", 1.0),
        (r"sales", 1.0),
        (r"stock", 1.0),
        (r"hourly|daily|weekly|monthly", 1.0),
    ),
    "tabular-classification": (
        (r"tabular", 3.0),
        (r"churn", 3.0),
        (r"spreadsheet", 2.0),
        (r"csv", 2.0),
        (r"fraud", 2.0),
        (r"credit", 2.0),
        (r"columns?\b", 1.0),
        (r"records?\b", 1.0),
        (r"customers?\b", 1.0),
        (r"classif", 1.0),
        (r"diagnos", 1.0),
        (r"anomal", 1.0),
        (r"risk", 1.0),
    ),
}

#: Most keywords reported in MLModelMetadata.keywords.
MAX_KEYWORDS: Final = 10

#: English function words, request filler ("want", "need") and words every ML problem statement
#: shares ("model", "problem", "task") that never tell problems apart.
# fmt: off
STOPWORDS: Final[frozenset[str]] = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "down", "during", "each", "etc", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "let", "me", "more",
    "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other",
    "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such",
    "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they",
    "this", "those", "through", "to", "too", "under", "until", "up", "upon", "us", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "within",
    "without", "would", "you", "your", "yours", "yourself", "yourselves", "able", "want", "wants",
    "wanted", "need", "needs", "needed", "like", "please", "use", "used", "using", "get", "make",
    "makes", "given", "based", "must", "may", "might", "shall", "one", "two", "three", "many", "much",
    "lot", "lots", "via", "per", "e.g", "i.e", "something", "someone", "thing", "things", "way", "ways",
    "new", "model", "models", "problem", "problems", "task", "tasks",
})
# fmt: on

# ------------------------------------------------------------------------------------------------
# APP_REQUIREMENTS
# ------------------------------------------------------------------------------------------------

#: "real-time" with no number: 100 ms, the interactive-response heuristic proposed in
#: estimation-sources.md section 14 (estimate; ~0.1 s is the classic "feels instantaneous" limit,
#: Nielsen, Usability Engineering, 1993).
REALTIME_LATENCY_MS: Final = 100.0

#: Latency units to milliseconds.
TIME_UNIT_MS: Final[dict[str, float]] = {
    "us": 0.001,
    "µs": 0.001,
    "microsecond": 0.001,
    "microseconds": 0.001,
    "ms": 1.0,
    "msec": 1.0,
    "msecs": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
}

#: Size units to MB. Binary multiples, because that is what people mean by "fits in 2 GB" of device
#: memory (2 GB -> 2048 MB).
SIZE_UNIT_MB: Final[dict[str, float]] = {
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "kilobyte": 1 / 1024,
    "kilobytes": 1 / 1024,
    "mb": 1.0,
    "mib": 1.0,
    "megabyte": 1.0,
    "megabytes": 1.0,
    "gb": 1024.0,
    "gib": 1024.0,
    "gigabyte": 1024.0,
    "gigabytes": 1024.0,
    "tb": 1024.0 * 1024.0,
    "tib": 1024.0 * 1024.0,
    "terabyte": 1024.0 * 1024.0,
    "terabytes": 1024.0 * 1024.0,
}

#: Deployment targets, most constraining first: when a description names several ("trained in the
#: cloud, runs on phones") the first listed here wins, since it binds the model choice.
DEPLOYMENT_TERMS: Final[tuple[tuple[str, str], ...]] = (
    ("embedded", r"embedded|micro-?controllers?|mcus?\b|fpgas?\b|firmware"),
    ("mobile", r"mobile|smart-?phones?|phones?\b|android|ios\b|iphones?|tablets?\b"),
    ("browser", r"browsers?\b|web-?assembly|wasm\b|client-side|javascript"),
    ("edge", r"edge\b|on-?device|jetson|raspberry|iot\b|drones?\b|robots?\b"),
    ("on-premise", r"on-?prem(?:ise|ises)?\b|in-house|local servers?|own servers?|our servers?"),
    ("cloud", r"cloud|data-? ?cent(?:er|re)s?|aws\b|azure|gcp\b|google cloud|servers?\b"),
)

# ------------------------------------------------------------------------------------------------
# ML_MODEL: the model catalogue
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue model. ``macs`` is for one forward pass at the stated ``input``."""

    name: str
    family: str
    goals: tuple[str, ...]
    parameters: int
    macs: float
    input: str
    source: str

    @property
    def fp32_weight_mb(self) -> float:
        return self.parameters * 4 / 1e6


#: Text models: MACs ~= (weight parameters used per token) x tokens + attention (2 x L^2 x d per
#: layer); embeddings are look-ups, tied LM heads count. These are estimates from the published
#: configurations, labelled as such.
MODEL_CATALOGUE: Final[tuple[ModelSpec, ...]] = (
    ModelSpec(
        name="resnet-18",
        family="CNN (ResNet)",
        goals=("image-classification",),
        # torchvision model table; its "GFLOPS" column counts multiply-adds, i.e. MACs.
        parameters=11_689_512,
        macs=1.81e9,
        input="1x3x224x224",
        source="torchvision docs, ResNet18_Weights.IMAGENET1K_V1 (He et al. 2015)",
    ),
    ModelSpec(
        name="resnet-50",
        family="CNN (ResNet)",
        goals=("image-classification",),
        parameters=25_557_032,
        macs=4.09e9,
        input="1x3x224x224",
        source="torchvision docs, ResNet50_Weights.IMAGENET1K_V1 (He et al. 2015)",
    ),
    ModelSpec(
        name="mobilenet-v2",
        family="CNN (MobileNet)",
        goals=("image-classification",),
        # Sandler et al. 2018 report 300 M multiply-adds; torchvision lists 3,504,872 params.
        parameters=3_504_872,
        macs=0.30e9,
        input="1x3x224x224",
        source="torchvision docs, MobileNet_V2_Weights.IMAGENET1K_V1 (Sandler et al. 2018)",
    ),
    ModelSpec(
        name="efficientnet-b0",
        family="CNN (EfficientNet)",
        goals=("image-classification",),
        parameters=5_288_548,
        macs=0.39e9,
        input="1x3x224x224",
        source="torchvision docs, EfficientNet_B0_Weights.IMAGENET1K_V1 (Tan & Le 2019: 0.39 B FLOPS = MACs)",
    ),
    ModelSpec(
        name="yolov5s",
        family="CNN (YOLO)",
        goals=("object-detection",),
        # README: 7.2 M params, 16.5 GFLOPs at 640 (thop MACs x 2), so 8.25 G MACs.
        parameters=7_200_000,
        macs=8.25e9,
        input="1x3x640x640",
        source="ultralytics/yolov5 README model table (numbers only)",
    ),
    ModelSpec(
        name="unet",
        family="CNN (U-Net)",
        goals=("image-segmentation",),
        # The small U-Net upstream SustainML bundles (11 Conv, 2 ConvTranspose): ~1.59 M params,
        # ~6.84 GMAC (estimation-sources.md section 11; Ronneberger et al. 2015 architecture).
        parameters=1_590_000,
        macs=6.84e9,
        input="1x3x128x128",
        source="eProsima sustainml-wp2 bundled U-Net ONNX, as analysed in estimation-sources.md",
    ),
    ModelSpec(
        name="distilbert-base-uncased",
        family="Transformer encoder",
        goals=("text-classification",),
        # estimate: 6 layers x 7.09 M weights x 128 tokens = 5.44 G + attention 6 x 2 x 128^2 x 768 = 0.15 G.
        parameters=66_362_880,
        macs=5.6e9,
        input="128 tokens",
        source="Sanh et al. 2019 (66 M params, HF config); MACs estimate from the config",
    ),
    ModelSpec(
        name="bert-base-uncased",
        family="Transformer encoder",
        goals=("text-classification",),
        # estimate: 12 x 7.09 M x 128 = 10.9 G + attention 0.3 G; consistent with onnx-tool's
        # BERT-Squad 22.8 G MACs at 256 tokens.
        parameters=109_482_240,
        macs=11.2e9,
        input="128 tokens",
        source="Devlin et al. 2018 (110 M params, HF config); MACs estimate from the config",
    ),
    ModelSpec(
        name="t5-small",
        family="Transformer encoder-decoder",
        goals=("summarization", "translation"),
        # estimate: (18.9 M encoder + 25.2 M decoder + 16.4 M tied head) x 128 = 7.7 G + attention 0.3 G.
        parameters=60_506_624,
        macs=8.0e9,
        input="128 input + 128 output tokens",
        source="Raffel et al. 2020 (60 M params, HF config); MACs estimate from the config",
    ),
    ModelSpec(
        name="gpt2",
        family="Transformer decoder",
        goals=("text-generation",),
        # estimate: (85.1 M blocks + 38.6 M tied LM head) x 128 = 15.8 G + attention 0.3 G.
        parameters=124_439_808,
        macs=16.1e9,
        input="128 tokens",
        source="Radford et al. 2019 (124 M params, HF config); MACs estimate from the config",
    ),
    ModelSpec(
        name="whisper-tiny",
        family="Transformer encoder-decoder (audio)",
        goals=("automatic-speech-recognition",),
        # estimate: encoder 4 x 1.77 M x 1500 frames = 10.6 G + attention 6.9 G + conv stem 0.9 G;
        # cross-attention K/V 1.8 G; decoder (9.4 M + 19.9 M head) x 128 = 3.8 G + attention 0.6 G.
        parameters=39_000_000,
        macs=24.6e9,
        input="30 s log-mel window + 128 output tokens",
        source="openai/whisper README (tiny: 39 M params); MACs estimate from the config",
    ),
    ModelSpec(
        name="lstm-forecaster",
        family="RNN (LSTM)",
        goals=("time-series-forecasting",),
        # computed: 2-layer LSTM, hidden 64, 8 inputs (PyTorch layout, two bias vectors):
        # 4x(64x8+64x64+128) + 4x(64x64+64x64+128) + (64x24+24) = 53,784 params;
        # MACs per step 4x64x(8+64) + 4x64x(64+64) = 51,200, x 168 steps + head 1,536 = 8,603,136.
        parameters=53_784,
        macs=8_603_136.0,
        input="168 steps x 8 features -> 24 steps",
        source="computed from the stated configuration (Hochreiter & Schmidhuber 1997 LSTM cell)",
    ),
    ModelSpec(
        name="tabular-mlp",
        family="MLP",
        goals=("tabular-classification",),
        # computed: 64-256-256-2 with biases: 16,640 + 65,792 + 514 params; 16,384 + 65,536 + 512 MACs.
        parameters=82_946,
        macs=82_432.0,
        input="64 features -> 2 classes",
        source="computed from the stated configuration",
    ),
)

#: Sentinels the GUI and downstream stages key on (upstream-behaviour.md section 16).
NO_MODEL: Final = "NO_MODEL"
NO_MODEL_PATH: Final = "N/A"
NO_MODEL_ERROR: Final = "No suitable model found for the given problem."
NO_MODEL_HW_ERROR: Final = "No model selected (NO_MODEL). HW resources not computed."
MODEL_PATH_SCHEME: Final = "catalogue://"

# ------------------------------------------------------------------------------------------------
# HW_RESOURCES: the hardware table and the estimation constants
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareSpec:
    name: str
    description: str
    peak_fp32_flops: float
    tdp_w: float
    idle_w: float
    memory_gb: float
    aliases: tuple[str, ...]
    source: str


HARDWARE: Final[tuple[HardwareSpec, ...]] = (
    HardwareSpec(
        name="PIM_AI_1chip",
        description="UPMEM PIM-AI processing-in-memory chip (1 chip)",
        # 5 TFLOPS from upstream sim_architectures.yaml (precision unstated, taken as fp32: estimate).
        peak_fp32_flops=5e12,
        # estimate: the table's implied peak compute 2.0 W + memory 0.78 W; idle 10 % of that.
        tdp_w=2.78,
        idle_w=0.28,
        # estimate: capacity is not published; one 16 Gb LPDDR5 die = 2 GB.
        memory_gb=2.0,
        aliases=("pim",),  # "PIM-AI-1chip" (the GUI spelling) normalises to the name
        source="upstream sim_architectures.yaml (peak); TDP, idle and memory are estimates",
    ),
    HardwareSpec(
        name="A100",
        description="NVIDIA A100 PCIe 40 GB",
        # NVIDIA A100 datasheet: 19.5 TFLOPS fp32, 250 W (PCIe 40 GB), 40 GB HBM2.
        peak_fp32_flops=19.5e12,
        tdp_w=250.0,
        idle_w=35.0,  # estimate: typical nvidia-smi idle draw of a PCIe data-centre GPU
        memory_gb=40.0,
        aliases=("nvidia a100", "a100 pcie", "a100-40gb", "a100 pcie 40gb"),
        source="NVIDIA A100 Tensor Core GPU datasheet; idle power is an estimate",
    ),
    HardwareSpec(
        name="T4",
        description="NVIDIA T4 16 GB",
        # NVIDIA T4 datasheet: 8.1 TFLOPS fp32, 70 W, 16 GB GDDR6.
        peak_fp32_flops=8.1e12,
        tdp_w=70.0,
        idle_w=10.0,  # estimate
        memory_gb=16.0,
        aliases=("nvidia t4", "tesla t4"),
        source="NVIDIA T4 Tensor Core GPU datasheet; idle power is an estimate",
    ),
    HardwareSpec(
        name="Jetson-Orin-Nano",
        description="NVIDIA Jetson Orin Nano 8 GB module (15 W mode)",
        # Datasheet: 1024 CUDA cores at up to 625 MHz, 7-15 W power modes, 8 GB LPDDR5.
        # Peak computed as 1024 x 2 FLOP (FMA) x 0.625 GHz = 1.28 TFLOPS.
        peak_fp32_flops=1.28e12,
        tdp_w=15.0,
        idle_w=3.0,  # estimate
        memory_gb=8.0,
        aliases=("orin nano", "jetson", "orin-nano-8gb"),
        source="NVIDIA Jetson Orin Nano series datasheet (peak computed from cores x clock); idle estimate",
    ),
    HardwareSpec(
        name="Raspberry-Pi-5",
        description="Raspberry Pi 5, 8 GB (4x Cortex-A76 at 2.4 GHz)",
        # Peak computed: 4 cores x 2.4 GHz x 16 fp32 FLOP/cycle (two 128-bit NEON FMA pipes).
        peak_fp32_flops=153.6e9,
        # estimates from published whole-board measurements (~2.7 W idle, ~8 W all-core load); the
        # official 27 W supply rating also feeds USB peripherals, so it is not the board's draw.
        tdp_w=8.0,
        idle_w=2.7,
        memory_gb=8.0,
        aliases=("rpi5", "pi5", "raspberry pi"),
        source="Raspberry Pi 5 product brief (cores, clock, memory); peak computed; power estimates",
    ),
    HardwareSpec(
        name="local-cpu",
        description="Generic 8-core x86 desktop CPU (AVX2, 3.0 GHz)",
        # estimate: 8 cores x 3.0 GHz x 32 fp32 FLOP/cycle (AVX2: 8 lanes x 2 FMA units x 2).
        # Fixed numbers rather than probing the host, so results do not depend on where it runs.
        peak_fp32_flops=768e9,
        tdp_w=65.0,  # estimate: the common desktop CPU TDP class
        idle_w=10.0,  # estimate
        memory_gb=16.0,  # estimate
        aliases=("cpu", "local", "host", "localhost"),
        source="estimate for a typical desktop CPU (not measured on this host)",
    ),
)

DEFAULT_HARDWARE: Final = "PIM_AI_1chip"  # upstream HW_CONSTRAINTS default
DEFAULT_MAX_MEMORY_FOOTPRINT_MB: Final = 100  # upstream HW_CONSTRAINTS default (unit: MB)

#: Fraction of peak FLOP/s a batch-1 inference achieves: the low end of the 0.5-0.7 inference
#: range quoted in the llm-analysis README (estimation-sources.md section 6). Estimate.
COMPUTE_EFFICIENCY: Final = 0.5

#: Average utilisation for P = P_idle + u x (P_TDP - P_idle): the 50 % fallback of Cloud Carbon
#: Footprint / Etsy Cloud Jewels (LBNL 2016), estimation-sources.md section 3.5. Estimate.
UTILISATION: Final = 0.5

#: Activation and runtime memory on top of fp32 weights: 20 % of the weights with a 4 MB floor
#: (estimate; batch-1 activations of the catalogue models are a few MB, e.g. ResNet-50's largest
#: tensor is 64x112x112 fp32 = 3.2 MB).
ACTIVATION_FRACTION: Final = 0.2
ACTIVATION_FLOOR_MB: Final = 4.0

# ------------------------------------------------------------------------------------------------
# CARBON_FOOTPRINT: grid carbon intensity (location-based, lifecycle, g CO2e/kWh)
# ------------------------------------------------------------------------------------------------

#: Inferences the footprint covers when UserInput.extra_data has no "inferences" (estimate: a
#: round number small enough to read per-inference values off the result).
DEFAULT_INFERENCES: Final = 1000

#: Environment variable that forces the grid intensity (g CO2e/kWh), as upstream wp3 does.
GRID_CI_ENV: Final = "SUSTAINML_GRID_CI"


@dataclass(frozen=True)
class GridIntensity:
    key: str  # ISO 3166 alpha-2 (countries) or continent name
    g_per_kwh: float
    year: str
    source: str
    aliases: tuple[str, ...] = ()


_OWID_2025 = "Ember via Our World in Data (CC BY 4.0), as in upstream sustainml-wp3 carbon_intensities.csv"
_OWID_2023 = "Ember via Our World in Data (CC BY 4.0), as bundled by carbontracker/CodeCarbon"

#: Countries: alpha-2, alpha-3 and English names are accepted (aliases).
COUNTRY_INTENSITY: Final[tuple[GridIntensity, ...]] = (
    GridIntensity("FR", 41.4, "2024/2025", _OWID_2025, ("FRA", "France")),
    GridIntensity("DE", 329.7, "2024/2025", _OWID_2025, ("DEU", "Germany", "Deutschland")),
    GridIntensity("ES", 153.6, "2024/2025", _OWID_2025, ("ESP", "Spain", "España", "Espana")),
    GridIntensity(
        "GB",
        217.4,
        "2024/2025",
        _OWID_2025,
        ("GBR", "UK", "United Kingdom", "Great Britain", "Britain", "England", "Scotland", "Wales"),
    ),
    GridIntensity("US", 384.4, "2024/2025", _OWID_2025, ("USA", "United States", "United States of America")),
    GridIntensity("CN", 525.3, "2024/2025", _OWID_2025, ("CHN", "China")),
    GridIntensity("IN", 670.1, "2024/2025", _OWID_2025, ("IND", "India")),
    GridIntensity("IT", 331.0, "2023", _OWID_2023, ("ITA", "Italy", "Italia")),
    GridIntensity("NL", 268.0, "2023", _OWID_2023, ("NLD", "Netherlands", "Holland")),
    GridIntensity("BE", 138.0, "2023", _OWID_2023, ("BEL", "Belgium")),
    GridIntensity("AT", 111.0, "2023", _OWID_2023, ("AUT", "Austria")),
    GridIntensity("CH", 35.0, "2023", _OWID_2023, ("CHE", "Switzerland")),
    GridIntensity("SE", 41.0, "2023", _OWID_2023, ("SWE", "Sweden")),
    GridIntensity("NO", 30.0, "2023", _OWID_2023, ("NOR", "Norway")),
    GridIntensity("FI", 79.0, "2023", _OWID_2023, ("FIN", "Finland")),
    GridIntensity("DK", 152.0, "2023", _OWID_2023, ("DNK", "Denmark")),
    GridIntensity("PL", 662.0, "2023", _OWID_2023, ("POL", "Poland")),
    GridIntensity("PT", 166.0, "2023", _OWID_2023, ("PRT", "Portugal")),
    GridIntensity("IE", 291.0, "2023", _OWID_2023, ("IRL", "Ireland")),
    GridIntensity("CZ", 450.0, "2023", _OWID_2023, ("CZE", "Czechia", "Czech Republic")),
    GridIntensity("CA", 170.0, "2023", _OWID_2023, ("CAN", "Canada")),
    GridIntensity("MX", 507.0, "2023", _OWID_2023, ("MEX", "Mexico")),
    GridIntensity("BR", 98.0, "2023", _OWID_2023, ("BRA", "Brazil", "Brasil")),
    GridIntensity("AR", 354.0, "2023", _OWID_2023, ("ARG", "Argentina")),
    GridIntensity("CL", 291.0, "2023", _OWID_2023, ("CHL", "Chile")),
    GridIntensity("JP", 485.0, "2023", _OWID_2023, ("JPN", "Japan")),
    GridIntensity("SG", 471.0, "2023", _OWID_2023, ("SGP", "Singapore")),
    GridIntensity("AU", 549.0, "2023", _OWID_2023, ("AUS", "Australia")),
    GridIntensity("NZ", 113.0, "2023", _OWID_2023, ("NZL", "New Zealand")),
    GridIntensity("ZA", 708.0, "2023", _OWID_2023, ("ZAF", "South Africa")),
    GridIntensity("EG", 570.0, "2023", _OWID_2023, ("EGY", "Egypt")),
    GridIntensity("NG", 523.0, "2023", _OWID_2023, ("NGA", "Nigeria")),
    GridIntensity("KE", 70.0, "2023", _OWID_2023, ("KEN", "Kenya")),
    GridIntensity("SA", 707.0, "2022", _OWID_2023, ("SAU", "Saudi Arabia")),
    GridIntensity("AE", 561.0, "2022", _OWID_2023, ("ARE", "United Arab Emirates", "UAE")),
)

_CONTINENT_SOURCE = (
    "unweighted median over carbontracker's OWID country table (NOT generation-weighted; "
    "estimation-sources.md section 2.4)"
)

CONTINENT_INTENSITY: Final[tuple[GridIntensity, ...]] = (
    GridIntensity("Africa", 488.0, "2023", _CONTINENT_SOURCE),
    GridIntensity("Asia", 574.0, "2023", _CONTINENT_SOURCE),
    GridIntensity("Europe", 238.0, "2023", _CONTINENT_SOURCE, ("EU",)),
    GridIntensity("North America", 561.0, "2023", _CONTINENT_SOURCE, ("NorthAmerica", "N. America")),
    GridIntensity("Oceania", 571.0, "2023", _CONTINENT_SOURCE, ("Australia and Oceania",)),
    GridIntensity(
        "South America", 260.0, "2023", _CONTINENT_SOURCE, ("SouthAmerica", "S. America", "Latin America")
    ),
)

#: World default: Ember via OWID 2025, the upstream wp3 WORLD row.
WORLD_INTENSITY: Final = GridIntensity("WORLD", 458.29, "2025", _OWID_2025)
