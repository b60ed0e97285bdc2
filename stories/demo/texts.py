"""What the demo's books say: one story, told in each of the catalog's languages,
with each family's hero ({T}: its title, as the subject of a sentence; {t} the same
mid-sentence), and an easier telling of it for the adaptations (one short
sentence a page), so content's analysis has real text to read (#40): every
adaptation reads easier than its original, every translation as its own language.

Latin-1 only: the PDFs use a standard font (stories/samples.py).
"""

from __future__ import annotations

import random

STORY = {
    "en": (
        "{T} lived near the river, under the big baobab tree.",
        "Every morning {t} walked to the water to drink and to talk with the birds.",
        "One day the sky turned dark, and a strong wind began to blow across the plain.",
        "The other animals were afraid and did not know where to hide from the storm.",
        "{T} showed them a dry cave behind the rocks, and they all waited there together.",
        "When the sun came back, the animals thanked their friend and sang until the night.",
    ),
    "fr": (
        "{T} vivait près de la rivière, sous le grand baobab.",
        "Chaque matin, {t} allait boire l'eau de la rivière et parler avec les oiseaux.",
        "Un jour, le ciel devint sombre et un vent très fort se mit à souffler sur la plaine.",
        "Les autres animaux avaient peur et ne savaient pas où se cacher de l'orage.",
        "{T} leur montra une grotte sèche derrière les rochers, et ils attendirent ensemble.",
        "Quand le soleil revint, les animaux remercièrent {t} et chantèrent jusqu'à la nuit.",
    ),
    "es": (
        "{T} vivía cerca del río, bajo el gran baobab.",
        "Cada mañana, {t} caminaba hasta el agua para beber y hablar con los pájaros.",
        "Un día el cielo se puso oscuro y un viento muy fuerte empezó a soplar sobre la llanura.",
        "Los otros animales tenían miedo y no sabían dónde esconderse de la tormenta.",
        "{T} les mostró una cueva seca detrás de las rocas, y todos esperaron allí juntos.",
        "Cuando volvió el sol, los animales dieron las gracias y cantaron hasta la noche.",
    ),
    "sw": (
        "{T} aliishi karibu na mto, chini ya mbuyu mkubwa.",
        "Kila asubuhi {t} alitembea hadi mtoni kunywa maji na kuzungumza na ndege.",
        "Siku moja anga likawa jeusi, na upepo mkali ukaanza kuvuma katika uwanda.",
        "Wanyama wengine waliogopa na hawakujua mahali pa kujificha kutokana na dhoruba.",
        "{T} aliwaonyesha pango kavu nyuma ya miamba, na wote wakasubiri pale pamoja.",
        "Jua liliporudi, wanyama walimshukuru rafiki yao na wakaimba hadi usiku.",
    ),
    "pt": (
        "{T} vivia perto do rio, debaixo do grande embondeiro.",
        "Todas as manhãs, {t} caminhava até a água para beber e conversar com os pássaros.",
        "Um dia o céu ficou escuro e um vento muito forte começou a soprar sobre a planície.",
        "Os outros animais tinham medo e não sabiam onde se esconder da tempestade.",
        "{T} mostrou-lhes uma gruta seca atrás das rochas, e todos esperaram ali juntos.",
        "Quando o sol voltou, os animais agradeceram e cantaram até a noite.",
    ),
}
# The easy telling's first and last pages.
EASY = {
    "en": ("{T} lives by the river.", "The sun comes back."),
    "fr": ("{T} vit près de la rivière.", "Le soleil revient."),
    "es": ("{T} vive junto al río.", "El sol vuelve."),
    "sw": ("{T} anaishi karibu na mto.", "Jua linarudi."),
    "pt": ("{T} vive perto do rio.", "O sol volta."),
}
# What each family's hero finds on the way and in the cave: four things each time,
# drawn for the family (the same in each of its languages), so no two families'
# stories are near-duplicates of each other (content's duplicates.py would say so).
THINGS = {
    "en": ("a red mango", "a small drum", "two blue cups", "a wooden spoon",
           "a basket of beans", "a yellow kite", "an old hat", "a bag of rice",
           "a green bottle", "three round stones", "a straw mat", "a clay pot",
           "a bunch of bananas", "a silver bell", "a rope ladder", "a broken sandal",
           "a bowl of millet", "a striped blanket", "a paper boat", "a tin whistle",
           "a jar of honey", "a long feather", "a sack of maize", "a painted box"),
    "fr": ("une mangue rouge", "un petit tambour", "deux tasses bleues", "une cuillère en bois",
           "un panier de haricots", "un cerf-volant jaune", "un vieux chapeau", "un sac de riz",
           "une bouteille verte", "trois pierres rondes", "une natte de paille",
           "un pot en argile", "un régime de bananes", "une cloche d'argent",
           "une échelle de corde", "une sandale cassée", "un bol de mil",
           "une couverture rayée", "un bateau en papier", "un sifflet en fer",
           "un pot de miel", "une longue plume", "un sac de maïs", "une boîte peinte"),
    "es": ("un mango rojo", "un tambor pequeño", "dos tazas azules", "una cuchara de madera",
           "una cesta de frijoles", "una cometa amarilla", "un sombrero viejo",
           "una bolsa de arroz", "una botella verde", "tres piedras redondas",
           "una estera de paja", "una olla de barro", "un racimo de plátanos",
           "una campana de plata", "una escalera de cuerda", "una sandalia rota",
           "un cuenco de mijo", "una manta de rayas", "un barco de papel",
           "un silbato de lata", "un tarro de miel", "una pluma larga", "un saco de maíz",
           "una caja pintada"),
    "sw": ("embe jekundu", "ngoma ndogo", "vikombe viwili vya buluu", "mwiko wa mbao",
           "kikapu cha maharagwe", "tiara ya njano", "kofia kuukuu", "mfuko wa mchele",
           "chupa ya kijani", "mawe matatu ya mviringo", "mkeka wa majani",
           "chungu cha udongo", "mkungu wa ndizi", "kengele ya fedha", "ngazi ya kamba",
           "kiatu kilichovunjika", "bakuli la mtama", "blanketi la mistari",
           "mashua ya karatasi", "filimbi ya bati", "mtungi wa asali", "unyoya mrefu",
           "gunia la mahindi", "sanduku lililopakwa rangi"),
    "pt": ("uma manga vermelha", "um tambor pequeno", "duas xícaras azuis", "uma colher de pau",
           "um cesto de feijão", "uma pipa amarela", "um chapéu velho", "um saco de arroz",
           "uma garrafa verde", "três pedras redondas", "uma esteira de palha",
           "um pote de barro", "um cacho de bananas", "um sino de prata", "uma escada de corda",
           "uma sandália quebrada", "uma tigela de milhete", "um cobertor listrado",
           "um barco de papel", "um apito de lata", "um pote de mel", "uma pena comprida",
           "um saco de milho", "uma caixa pintada"),
}  # fmt: skip
# What the hero does with them, and where: each middle page is two sentences
# "{T} <did> <a thing> <somewhere>." drawn for the family.
DID = {
    "en": ("found", "carried", "gave away", "hid", "shared", "painted", "lost", "counted"),
    "fr": ("trouva", "porta", "donna", "cacha", "partagea", "peignit", "perdit", "compta"),
    "es": ("encontró", "llevó", "regaló", "escondió", "compartió", "pintó", "perdió", "contó"),
    "sw": ("aliona", "alibeba", "alitoa", "alificha", "aligawa", "alipaka rangi", "alipoteza",
           "alihesabu"),
    "pt": ("encontrou", "levou", "deu", "escondeu", "partilhou", "pintou", "perdeu", "contou"),
}  # fmt: skip
WHERE = {
    "en": ("near the river", "under the baobab", "behind the hill", "at the market",
           "in the garden", "on the path", "by the lake", "in front of the house"),
    "fr": ("près de la rivière", "sous le baobab", "derrière la colline", "au marché",
           "dans le jardin", "sur le chemin", "au bord du lac", "devant la maison"),
    "es": ("cerca del río", "bajo el baobab", "detrás de la colina", "en el mercado",
           "en el jardín", "en el camino", "a orillas del lago", "delante de la casa"),
    "sw": ("karibu na mto", "chini ya mbuyu", "nyuma ya kilima", "sokoni", "bustanini",
           "njiani", "kando ya ziwa", "mbele ya nyumba"),
    "pt": ("perto do rio", "debaixo do embondeiro", "atrás da colina", "no mercado",
           "no jardim", "no caminho", "na beira do lago", "em frente da casa"),
}  # fmt: skip
MIDDLE_PAGES = 4
# What an adaptation's title adds, in its language.
EASY_TITLE = {
    "en": "first words",
    "fr": "premiers mots",
    "es": "primeras palabras",
    "sw": "maneno ya kwanza",
    "pt": "primeiras palavras",
}


def pages(language: str, hero: str, family: int, *, easy: bool = False) -> list[str]:
    """The story's pages in `language`, `hero` (a title: "La girafe curieuse") its
    subject. The full telling opens and closes as every family's does and in between
    tells what family number `family`'s hero did, two sentences a page (the same in
    each of the family's languages); the easy telling is one short sentence a page
    of the same story."""
    inside = hero[:1].lower() + hero[1:]
    frame = EASY[language] if easy else STORY[language]
    rng = random.Random(family)  # a story, not a secret
    things = rng.sample(range(len(THINGS[language])), 2 * MIDDLE_PAGES)
    middle = []
    for page in range(MIDDLE_PAGES):
        told = []
        for thing in things[2 * page : 2 * page + 2]:
            did, where = rng.randrange(len(DID[language])), rng.randrange(len(WHERE[language]))
            what = f"{hero} {DID[language][did]} {THINGS[language][thing]}"
            told.append(f"{what}." if easy else f"{what} {WHERE[language][where]}.")
        middle.append(told[0] if easy else " ".join(told))
    return [frame[0].format(T=hero, t=inside), *middle, frame[-1].format(T=hero, t=inside)]
